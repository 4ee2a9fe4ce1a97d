#!/usr/bin/env python3
"""Trains CIFAR-10 ResNets of one architecture from several seeds, resumably, so that "trained
against control" and "this training run against training in general" can be told apart
(issue: several trained networks). The network is flickertag's own CIFAR ResNet
(`flickertag.cifar_resnet.CifarResNet(n)`: depth 6n + 2, option-A shortcuts), trained on the
data folder's training set (decoded from JPEG, so approximate: acceptable for training, see the
data README) with the usual recipe: random crops (4 pixels of zero padding) and horizontal flips,
SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, a one-cycle learning rate peaking
at 0.1, ImageNet's mean and standard deviation as the input normalization (as the pretrained
checkpoints). Each seed fixes the initialization, the data order and the augmentation.
Weights and batches are held channels-last (the same arithmetic; 16-20 % faster on this CPU:
504 -> 423 ms per step at one thread, 288 -> 229 at two, ResNet-20, batch 128:
`scripts/bench-train-step.py THREADS`); seeds 0 and
1 (to epoch 22) were trained before this, in the default layout.

Resumable: after every epoch the whole training state (weights, optimizer, schedule, the
random generators' states) is written to `OUT/resnet<depth>-seed<s>.state.pt`, atomically;
a killed run started again continues from the last finished epoch, with the data order and
augmentation it would have had. At the end of a seed its
weights are written as a checkpoint flickertag reads (`OUT/resnet<depth>-seed<s>.th`, the
pretrained checkpoints' format: `state_dict` without the fixed shortcut convs), and its
accuracy on the exact CIFAR-10 test set, epochs and seconds go to `OUT/trained.json`.

Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/train-cifar-resnets.py
           [--n 1] [--seeds 0,1,2,3,4] [--epochs 30] [--out models/trained] [--max-minutes M]
`--max-minutes` stops cleanly after the epoch that passes it (resume later)."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from flickertag.cifar_resnet import MEAN, STD, CifarResNet  # the installed package (make python)

HERE = os.path.dirname(os.path.abspath(__file__))


def cifar(data, split):
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(os.path.join(data, "cifar10", f), dtype=np.uint8) for f in files])
    rec = raw.reshape(-1, 3073)
    return torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(rec[:, 0].astype(np.int64))


def normalize(u8):
    x = u8.float() / 255.0
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def augment(x, g):
    """Random 32 x 32 crops of the zero-padded (4 pixels) batch, and horizontal flips."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=g)
    dy = torch.randint(0, 9, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = crop.flip(2) if flip[i] else crop
    return out


def accuracy(net, x, y):
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(normalize(x[b:b + 1000])).argmax(1) for b in range(0, len(x), 1000)])
    net.train()
    return float((pred == y).float().mean() * 100)


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_seed(args, seed, xs, ys, xt, yt, deadline):
    name = f"resnet{6 * args.n + 2}-seed{seed}"
    state_path = os.path.join(args.out, f"{name}.state.pt")
    steps = len(xs) // 128
    torch.manual_seed(seed)
    net = CifarResNet(args.n).to(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=args.epochs * steps, pct_start=0.25)
    g = torch.Generator().manual_seed(seed)
    epoch, seconds, log = 0, 0.0, []
    if os.path.exists(state_path):
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st["epochs"] != args.epochs or st["n"] != args.n:
            sys.exit(f"{state_path}: a run of {st['epochs']} epochs of n = {st['n']}; remove it to start afresh")
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        g.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        epoch, seconds, log = st["epoch"], st["seconds"], st["log"]
        print(f"{name}: resuming after epoch {epoch} ({seconds:.0f} s so far)")
    net.train()
    while epoch < args.epochs:
        if deadline is not None and time.time() > deadline:
            print(f"{name}: stopped after epoch {epoch} (--max-minutes); run again to continue")
            return None
        t0 = time.time()
        perm = torch.randperm(len(xs), generator=g)
        total = 0.0
        for b in range(steps):
            idx = perm[b * 128:(b + 1) * 128]
            x = augment(normalize(xs[idx]), g).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(x), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        epoch += 1
        seconds += time.time() - t0
        acc = accuracy(net, xt, yt) if epoch % 5 == 0 or epoch == args.epochs else None
        log.append({"epoch": epoch, "loss": total / steps, "test_accuracy": acc, "seconds": round(seconds, 1)})
        print(f"{name}: epoch {epoch}/{args.epochs} loss {total / steps:.3f}"
              + (f" test {acc:.2f} %" if acc is not None else "") + f" ({seconds:.0f} s)", flush=True)
        save_atomic({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "generator": g.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch,
                     "seconds": seconds, "log": log, "epochs": args.epochs, "n": args.n}, state_path)
    # contiguous: the checkpoint's tensors in the plain row-major layout every reader expects
    sd = {k: v.contiguous() for k, v in net.state_dict().items() if ".shortcut." not in k and not k.endswith("num_batches_tracked")}
    save_atomic({"state_dict": sd}, os.path.join(args.out, f"{name}.th"))
    os.remove(state_path)  # the weights and the log are kept; the training state is not needed
    return {"name": name, "seed": seed, "depth": 6 * args.n + 2, "epochs": args.epochs,
            "test_accuracy": log[-1]["test_accuracy"], "seconds": round(seconds), "log": log}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default=os.path.join(HERE, "..", "models", "trained"))
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 leaves a core free)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = os.environ.get("FLICKERTAG_DATA") or sys.exit("set FLICKERTAG_DATA")
    os.makedirs(args.out, exist_ok=True)
    xs, ys = cifar(data, "train")
    xt, yt = cifar(data, "test")
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
    index_path = os.path.join(args.out, "trained.json")
    index = json.load(open(index_path)) if os.path.exists(index_path) else {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        name = f"resnet{6 * args.n + 2}-seed{seed}"
        if name in index:
            continue
        done = train_seed(args, seed, xs, ys, xt, yt, deadline)
        if done is None:
            break
        index[name] = done
        with open(index_path + ".tmp", "w") as f:
            json.dump(index, f, indent=1)
        os.replace(index_path + ".tmp", index_path)
        print(f"{name}: {done['test_accuracy']:.2f} % on the CIFAR-10 test set, {done['seconds']} s")


if __name__ == "__main__":
    main()
