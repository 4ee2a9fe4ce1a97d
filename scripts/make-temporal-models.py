#!/usr/bin/env python3
"""Writes the models with time the tests read (crates/flickertag-cli/tests/zoo/temporal/)
and, from PyTorch itself, the oracle they are compared with:

- `clip3d.{legacy,dynamo}.onnx`: a small 3-D convolutional video network (Conv3d,
  BatchNorm3d with non-trivial statistics, ReLU, a strided Conv3d, pooling, Linear) on
  clips `[N, 3, 8, 32, 32]`, random weights;
- `recurrent.{legacy,dynamo}.onnx`: a small recurrent convolutional network
  (`h' = h / 2 + tanh(conv_in(x) + conv_h(h)) / 2`, logits from the pooled state),
  inputs `image [N, 3, 32, 32]` and `h [N, 32, 16, 16]`, outputs `logits` and `h_next`,
  **trained here** on the CIFAR-10 training set (each image shown for 4 frames, the
  loss on the last), its test accuracy measured here and written to the index;
- `<model>.npy`: per checked module, the amplitude spectra |rfft|/N `[C, 121]` of the
  per-channel means that forward hooks record on the zoo's stimulus (240 frames, 6 /
  7.5 Hz at 120 fps, of `../image.png`) run as flickertag documents it: clip model, the
  clip of the last 8 frames of the periodic window for each frame, read at the clip's
  centre time position; recurrent model, frame by frame from a zero state, after a
  warm-up of `WARMUP` frames (the window's frames, periodically), the state fed back.
- `temporal.json`: files, checks, offsets into the `.npy`, the warm-up, the accuracy.

Frames, clips and the recurrence are built here, in numpy and torch, not by flickertag.
Needs torch, onnx, onnxscript (`.venv`) and the data folder (CIFAR-10). Usage:
    .venv/bin/python scripts/make-temporal-models.py [DATA_DIR] [OUT_DIR]
"""
import importlib.util
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.parametrize

warnings.filterwarnings("ignore")
torch.manual_seed(0)
torch.set_num_threads(2)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FLICKERTAG_DATA", "../shared/data")
OUT = sys.argv[2] if len(sys.argv) > 2 else "crates/flickertag-cli/tests/zoo/temporal"
CLIP = 8
WARMUP = 1200
spec = importlib.util.spec_from_file_location("zoo", os.path.join(HERE, "make-model-zoo.py"))
zoo = importlib.util.module_from_spec(spec)
sys.argv, argv = sys.argv[:1], sys.argv  # the zoo module reads its own argv at import
spec.loader.exec_module(zoo)
sys.argv = argv
N = zoo.N


class Clip3D(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv3d(8, 16, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.fc(self.pool(x).flatten(1))


class Contract(nn.Module):
    """Scales a 3 x 3 conv weight so that the convolution's operator norm is at most
    0.9: with zero padding it is a sum of 9 shifted matrices, so its norm is at most
    the sum of the taps' norms, at most 3 x the Frobenius norm of the whole weight."""

    def forward(self, w):
        return w * (0.9 / torch.clamp(3 * w.norm(), min=0.9))


class RecurrentCNN(nn.Module):
    """One convolutional recurrent cell with a leak of one half per frame. The state
    map h -> h / 2 + tanh(conv_h(h) + ...) / 2 is a contraction (tanh is 1-Lipschitz,
    |conv_h| <= 0.9: factor at most 0.95 per frame), so a periodic stimulus has one
    periodic steady state that every start reaches. (Trained without the bound, the
    same network did not settle: its state still changed by 1.7 of itself over a
    window after 1,200 frames.)"""

    def __init__(self, width=32):
        super().__init__()
        self.conv_in = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.conv_h = nn.Conv2d(width, width, 3, padding=1)
        torch.nn.utils.parametrize.register_parametrization(self.conv_h, "weight", Contract())
        self.act = nn.Tanh()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, 10)

    def forward(self, x, h):
        h_next = 0.5 * h + 0.5 * self.act(self.conv_in(x) + self.conv_h(h))
        return self.fc(self.pool(h_next).flatten(1)), h_next


def cifar(split):
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(os.path.join(DATA, "cifar10", f), dtype=np.uint8) for f in files])
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def normalize(u8):
    x = torch.from_numpy(u8).float() / 255.0
    return (x - torch.tensor(zoo.MEAN)[:, None, None]) / torch.tensor(zoo.STD)[:, None, None]


def run_frames(model, x, steps):
    h = torch.zeros(x.shape[0], 32, 16, 16)
    for _ in range(steps):
        logits, h = model(x, h)
    return logits


def train_recurrent(steps=4, epochs=3):
    xs, ys = cifar("train")
    model = RecurrentCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (len(xs) // 128))
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for ep in range(epochs):
        perm = torch.randperm(len(xs), generator=g).numpy()
        for b in range(len(xs) // 128):
            idx = perm[b * 128:(b + 1) * 128]
            x = normalize(xs[idx])
            if torch.rand(1, generator=g).item() < 0.5:
                x = x.flip(3)
            loss = nn.functional.cross_entropy(run_frames(model, x, steps), torch.from_numpy(ys[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {ep + 1}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)")
    model.eval()
    # The bound baked into the weight: the exported conv is a plain Conv.
    torch.nn.utils.parametrize.remove_parametrizations(model.conv_h, "weight", leave_parametrized=True)
    xt, yt = cifar("test")
    with torch.no_grad():
        pred = torch.cat([run_frames(model, normalize(xt[b:b + 500]), steps).argmax(1) for b in range(0, len(xt), 500)])
    acc = (pred.numpy() == yt).mean() * 100
    print(f"recurrent: CIFAR-10 test accuracy {acc:.2f} % ({steps} frames per image)")
    return model, float(acc), time.time() - t0


def hooked(model, checks):
    mods = dict(model.named_modules())
    rec = {}

    def make(name, clip):
        def hook(m, i, o):
            o = o.detach().double()
            if clip and o.dim() == 5:
                o = o[:, :, o.shape[2] // 2]
            rec.setdefault(name, []).append(o.mean(dim=(2, 3)) if o.dim() == 4 else o)
        return hook

    return rec, mods, make


def spectra_of(rec, checks):
    out = {}
    for name in checks:
        series = torch.cat(rec[name]).double()  # [N, C]
        assert series.shape[0] == N, (name, series.shape)
        out[name] = (torch.fft.rfft(series, dim=0).abs() / N).T.float().numpy()
    return out


def clip_oracle(model, frames, checks):
    rec, mods, make = hooked(model, checks)
    hooks = [mods[c].register_forward_hook(make(c, True)) for c in checks]
    with torch.inference_mode():
        for b in range(0, N, 40):
            clips = [frames[[(t - CLIP + 1 + k) % N for k in range(CLIP)]] for t in range(b, min(b + 40, N))]
            x = torch.from_numpy(np.stack(clips)).permute(0, 2, 1, 3, 4).contiguous()  # [B, C, T, H, W]
            model(x)
    for h in hooks:
        h.remove()
    return spectra_of(rec, checks)


def recurrent_oracle(model, frames, checks):
    rec, mods, make = hooked(model, checks)
    x = torch.from_numpy(frames)
    h = torch.zeros(1, 32, 16, 16)
    with torch.inference_mode():
        for j in range(WARMUP):
            _, h = model(x[[(j - WARMUP) % N]], h)
        start = h.clone()
        hooks = [mods[c].register_forward_hook(make(c, False)) for c in checks]
        for t in range(N):
            _, h = model(x[[t]], h)
    for k in hooks:
        k.remove()
    change = float((h - start).norm() / max(h.norm(), start.norm()))
    return spectra_of(rec, checks), change


def export(model, args, path, dynamo, names, outs):
    if dynamo:
        import inspect
        params = list(inspect.signature(model.forward).parameters)
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(model, args, path, dynamo=True, external_data=False, input_names=names,
                          output_names=outs, dynamic_shapes={p: {0: batch} for p in params})
    else:
        axes = {n: {0: "batch"} for n in names + outs}
        torch.onnx.export(model, args, path, dynamo=False, opset_version=17, input_names=names,
                          output_names=outs, dynamic_axes=axes)
    import onnx
    m = onnx.load(path)
    m.metadata_props.add(key="flickertag.mean", value=",".join(str(v) for v in zoo.MEAN))
    m.metadata_props.add(key="flickertag.std", value=",".join(str(v) for v in zoo.STD))
    onnx.save(m, path)


def main():
    os.makedirs(OUT, exist_ok=True)
    frames = zoo.frames(zoo.test_image(), 3)  # [N, 3, 32, 32], normalized
    index = {}

    clip = zoo.nontrivial_norms(Clip3D()).eval()
    checks = ["relu1", "conv2", "relu2", "fc"]  # (conv1: the legacy exporter folds bn1 into it)
    spectra = clip_oracle(clip, frames, checks)
    index["clip3d"] = {"example": [2, 3, CLIP, 32, 32], "outputs": ["logits"]}
    models = [("clip3d", clip, (torch.zeros(2, 3, CLIP, 32, 32),), ["image"], ["logits"], checks, spectra)]

    rnn, acc, seconds = train_recurrent()
    checks = ["conv_in", "conv_h", "act", "fc"]
    spectra, change = recurrent_oracle(rnn, frames, checks)
    index["recurrent"] = {"warmup": WARMUP, "state_change_after_warmup": change,
                          "cifar10_test_accuracy": acc, "frames_per_image_in_training": 4,
                          "training_seconds": round(seconds)}
    models.append(("recurrent", rnn, (torch.zeros(2, 3, 32, 32), torch.zeros(2, 32, 16, 16)),
                   ["image", "h"], ["logits", "h_next"], checks, spectra))

    for name, model, args, names, outs, checks, spectra in models:
        files = {}
        for exporter, dynamo in (("legacy", False), ("dynamo", True)):
            path = f"{OUT}/{name}.{exporter}.onnx"
            export(model, args, path, dynamo, names, outs)
            files[exporter] = os.path.basename(path)
        offsets, rows = {}, []
        for c in checks:
            offsets[c] = [sum(r.shape[0] for r in rows), spectra[c].shape[0]]
            rows.append(spectra[c])
        np.save(f"{OUT}/{name}.npy", np.concatenate(rows).astype(np.float32))
        index[name].update({"files": files, "checks": checks, "spectra": offsets,
                            "named_modules": [n for n, _ in model.named_modules() if n]})
        print(name, files, {k: v.shape for k, v in spectra.items()})
    with open(f"{OUT}/temporal.json", "w") as f:
        json.dump(index, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"temporal models: {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
