#!/usr/bin/env python3
"""Reruns the commands behind docs/paradigms.md (ResNet-32) and prints every figure with the
command that produced it; copies the figures into docs/. About 12 minutes on 2 cores, most of it
the oddball validation (10 classes x 101 ablations of 1000 test images).
Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/readme-paradigms.py   (after make build)
Needs numpy (the project's .venv has it) to read the spectra."""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "flickertag")
DOCS = os.path.join(ROOT, "docs")
os.environ.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".cache/onnxruntime/1.31.1/libonnxruntime.so"))
if "FLICKERTAG_DATA" not in os.environ:
    sys.exit("set FLICKERTAG_DATA")
LUMA = np.array([0.299, 0.587, 0.114])
OPPONENT = np.array([LUMA, [1.0, -1.0, 0.0], [-0.5, -0.5, 1.0]])
MEAN = np.array([0.485, 0.456, 0.406])


def flickertag(out, *args):
    cmd = [*args, "--quiet", "--force", "--out", out]
    subprocess.run([BIN, *cmd], check=True)
    shown = [a for a in cmd if a not in (out, "--out")]
    print(f"$ flickertag {' '.join(shown)} --out DIR")


def tag_amplitudes(run):
    """Per tap, [channel] amplitude at the two fundamentals summed (mean over images)."""
    s = json.load(open(os.path.join(run, "summary.json")))
    spectra = np.load(os.path.join(run, "spectra_mean.npy"))
    bins = s["stimulus"]["bins"]
    out, row = {}, 0
    for t in s["taps"]:
        c = t["shape"][0]
        out[t["name"]] = spectra[row:row + c][:, bins].sum(axis=1)
        row += c
    return out


def input_contrast(n_images, seed_indices):
    """RMS over pixels of each opponent coordinate of the images, centred on the input mean."""
    raw = np.fromfile(os.path.join(os.environ["FLICKERTAG_DATA"], "cifar10", "test_batch.bin"), dtype=np.uint8)
    rec = raw.reshape(-1, 3073)
    px = rec[seed_indices, 1:].reshape(-1, 3, 1024).astype(np.float64) / 255.0 - MEAN[None, :, None]
    o = np.einsum("kc,ncp->nkp", OPPONENT, px)
    return np.sqrt((o ** 2).mean(axis=(0, 2)))


def colour(tmp):
    print("\n## Colour: which filters answer an isoluminant tag (100 test images, seed 1)")
    runs = {}
    for m in ["luminance", "red-green", "blue-yellow"]:
        out = os.path.join(tmp, m)
        flickertag(out, "analyze", "--model", "resnet32", "--taps", "conv", "--n-images", "100", "--seed", "1",
                   "--no-stats", "--modulation", m)
        runs[m] = tag_amplitudes(out)
    idx = [int(x["name"][5:-1]) for x in json.load(open(os.path.join(tmp, "luminance", "summary.json")))["images"]]
    rms = input_contrast(100, idx)
    print(f"input contrast (RMS over pixels, centred on the mean): luma {rms[0]:.4f}, red-green {rms[1]:.4f}, "
          f"blue-yellow {rms[2]:.4f}")
    print("| layer | median rg/lum | share rg/lum > input | median by/lum | share by/lum > input |")
    print("|---|---|---|---|---|")
    rows = []
    for tap, lum in runs["luminance"].items():
        rg = runs["red-green"][tap] / lum
        by = runs["blue-yellow"][tap] / lum
        rows.append((tap, np.median(rg), np.mean(rg > rms[1] / rms[0]), np.median(by), np.mean(by > rms[2] / rms[0])))
    for r in rows:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.2f} | {r[3]:.3f} | {r[4]:.2f} |")
    allrg = np.concatenate([runs["red-green"][t] / runs["luminance"][t] for t in runs["luminance"]])
    allby = np.concatenate([runs["blue-yellow"][t] / runs["luminance"][t] for t in runs["luminance"]])
    print(f"all {len(allrg)} conv filters: share above the input ratio: red-green {np.mean(allrg > rms[1] / rms[0]):.3f}, "
          f"blue-yellow {np.mean(allby > rms[2] / rms[0]):.3f}")


def contrast(tmp):
    print("\n## Contrast sweep (the paper's ten images)")
    out = os.path.join(tmp, "sweep")
    flickertag(out, "analyze", "--model", "resnet32", "--taps", "conv", "--no-stats",
               "--contrast-sweep", "0.125,0.25,0.5,1")
    rows = list(csv.DictReader(open(os.path.join(out, "contrast_response.csv"))))
    amp = {}
    for r in rows:
        amp.setdefault((r["tap"], r["channel"], r["region"]), {})[float(r["depth"])] = float(r["amplitude"])
    ratio = np.array([a[0.5] / a[1.0] for a in amp.values() if a[1.0] > 0])
    lo = np.array([a[0.125] / a[1.0] for a in amp.values() if a[1.0] > 0])
    print(f"amplitude at depth 0.5 / at depth 1 over {len(ratio)} (filter, region) pairs: median {np.median(ratio):.3f}, "
          f"5-95 % {np.quantile(ratio, 0.05):.3f}-{np.quantile(ratio, 0.95):.3f} (0.5: linear)")
    print(f"amplitude at depth 0.125 / at depth 1: median {np.median(lo):.3f}, "
          f"5-95 % {np.quantile(lo, 0.05):.3f}-{np.quantile(lo, 0.95):.3f} (0.125: linear)")
    shutil.copy(os.path.join(out, "plots", "contrast.png"), os.path.join(DOCS, "contrast.png"))


def oddball(tmp):
    print("\n## Oddball (10 classes x 10 streams, validated on 1000 test images from 5000..)")
    out = os.path.join(tmp, "oddball")
    flickertag(out, "oddball", "--model", "resnet32", "--validate", "--threads", "2")
    layers = list(csv.DictReader(open(os.path.join(out, "oddball_layers.csv"))))
    for c in dict.fromkeys(r["class"] for r in layers):
        of = [r for r in layers if r["class"] == c]
        sel = sum(int(r["selective"]) for r in of)
        tot = sum(int(r["filters"]) for r in of)
        print(f"- {c}: {sel} of {tot} conv filters selective (z > 2.32)")
    v = list(csv.DictReader(open(os.path.join(out, "oddball_validation.csv"))))
    print("| class | filters | recall | drop (pp) | 95 % CI | random drop | p | other classes' drop |")
    print("|---|---|---|---|---|---|---|---|")
    for r in v:
        f = {k: float(r[k]) for k in r if k != "class"}
        print(f"| {r['class']} | {int(f['filters'])} | {f['recall_intact']:.1f} | {f['drop']:.1f} | "
              f"[{f['drop_low']:.1f}, {f['drop_high']:.1f}] | {f['random_mean']:.1f} ± {f['random_sd']:.1f} | "
              f"{f['p_value']:.3f} | {f['other_drop']:.1f} |")
    shutil.copy(os.path.join(out, "plots", "oddball_map.png"), os.path.join(DOCS, "oddball_map.png"))
    s = json.load(open(os.path.join(out, "oddball.json")))
    print(f"frames run: {s['frames_run']} in {s['seconds']:.1f} s")


def main():
    tmp = tempfile.mkdtemp()
    colour(tmp)
    contrast(tmp)
    oddball(tmp)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
