#!/usr/bin/env python3
"""Time of one training step of flickertag's CIFAR ResNet-20 (batch 128, SGD with Nesterov
momentum) in torch's default memory layout and channels-last, at a given number of CPU
threads: the figures behind scripts/train-cifar-resnets.py's choice of channels-last.
5 warm-up steps, then the mean of 20 timed steps; random inputs (the arithmetic does not
depend on the values).
Usage: .venv/bin/python scripts/bench-train-step.py THREADS"""
import sys
import time

import torch
import torch.nn.functional as F

from flickertag.cifar_resnet import CifarResNet  # the installed package (make python)

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
for channels_last in [False, True]:
    torch.manual_seed(0)
    net = CifarResNet(3)
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for i in range(25):
        if i == 5:
            t = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step = (time.perf_counter() - t) / 20
    print(f"{'channels-last' if channels_last else 'default layout'}: {1000 * step:.0f} ms per step, "
          f"{step * 390 / 60:.1f} min per epoch of 390 steps ({torch.get_num_threads()} threads)")
