#!/usr/bin/env python3
"""Fine-tunes a network written by `flickertag prune` (pruned_model.pt) on the CIFAR-10
training set and reports test top-1 and wall time.

The short protocol that fits a 2-core machine (the default, about 4 minutes for a pruned
ResNet-56): one epoch over the 50,000 training images, SGD (momentum 0.9, weight
decay 5e-4, batch 128), learning rate 0.01 decayed to 0 by a cosine over the steps,
random crop (padding 4) and horizontal flip. The full protocol of Torch-Pruning's
ResNet-56 benchmark, for a GPU: `--epochs 100 --limit 50000 --device cuda` (its published
results after fine-tuning: group L1 92.93 %, group BN 93.29 %, its own method 93.77 %).

Caveat: the training set in ../shared/data was decoded from JPEG (exact labels,
approximate pixels; see its README), so fine-tuning here sees slightly different images
than the authors'.
Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/finetune-pruned.py PRUNE_DIR [--epochs N] [--lr LR]
       [--device cpu|cuda] [--limit N]"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from flickertag.cifar_resnet import MEAN, STD


def load(data, files):
    raw = np.concatenate([np.fromfile(os.path.join(data, "cifar10", f), dtype=np.uint8).reshape(-1, 3073)
                          for f in files])
    x = torch.tensor(raw[:, 1:].reshape(-1, 3, 32, 32), dtype=torch.float32) / 255
    x = (x - torch.tensor(MEAN)[None, :, None, None]) / torch.tensor(STD)[None, :, None, None]
    return x, torch.tensor(raw[:, 0], dtype=torch.long)


def top1(model, x, y, device, batch=500):
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch].to(device)).argmax(1).cpu() == y[i:i + batch]).sum().item()
    return 100.0 * correct / len(x)


def augment(x):
    n = len(x)
    flip = torch.rand(n) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    dx, dy = torch.randint(0, 9, (2, n))
    return torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("prune_dir")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=50000, help="training images per epoch (the first ones; 50000: all)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    data = os.environ["FLICKERTAG_DATA"]
    model = torch.load(os.path.join(a.prune_dir, "pruned_model.pt"), weights_only=False).to(a.device)
    xtr, ytr = load(data, [f"data_batch_{i}.bin" for i in range(1, 6)])
    xte, yte = load(data, ["test_batch.bin"])
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    before = top1(model, xte, yte, a.device)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    steps = a.epochs * ((len(xtr) + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t = time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(xtr))
        for i in range(0, len(xtr), a.batch):
            idx = order[i:i + a.batch]
            xb, yb = augment(xtr[idx]).to(a.device), ytr[idx].to(a.device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{a.epochs}: test top-1 {top1(model, xte, yte, a.device):.2f} % "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    after = top1(model, xte, yte, a.device)
    r = {"prune_dir": a.prune_dir, "epochs": a.epochs, "lr": a.lr, "batch": a.batch, "schedule": "cosine to 0",
         "train_images": len(xtr), "device": a.device, "threads": torch.get_num_threads(),
         "top1_before": before, "top1_after": after, "seconds": time.perf_counter() - t}
    print(json.dumps(r))
    # Beside the prune folder, which holds only what `flickertag prune` wrote.
    with open(f"{a.prune_dir.rstrip('/')}.finetune-{a.epochs}ep.json", "w") as f:
        json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
