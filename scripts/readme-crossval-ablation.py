#!/usr/bin/env python3
"""Reruns the cross-validated ablation of docs/statistics.md ("Does the selected set
matter on other images?") and prints every figure with the command that produced it.

For each network: the first 100 CIFAR-10 test images are the analysis images; 20 times
they are split into random halves A and B; on A the threshold is chosen (the most stable
set within A), and per conv layer A's important filters are ablated together (zero) and
the loss change is measured on B's images, against 20 random sets of the same size from
the same layer (`flickertag importance-truth --crossval-splits 20`). The single-filter
ground truth of the same command is not used here (`--n-images 2`, its minimum).

Usage: FLICKERTAG_DATA=../shared/data python3 scripts/readme-crossval-ablation.py
       [--models=resnet20,resnet32,resnet44,resnet56,models/trained/resnet20-seed0.th,...]   (after make build)
Standard library only: it reads the run folders flickertag writes."""
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "flickertag")
os.environ.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".cache/onnxruntime/1.31.1/libonnxruntime.so"))
if "FLICKERTAG_DATA" not in os.environ:
    sys.exit("set FLICKERTAG_DATA")
# The pretrained ResNets, then every network trained here (models/trained/trained.json).
MODELS = ["resnet20", "resnet32", "resnet44", "resnet56"] + [
    f"models/trained/{name}.th" for name in sorted(json.load(open(os.path.join(ROOT, "models", "trained", "trained.json"))))]
for a in sys.argv[1:]:
    if a.startswith("--models="):
        MODELS = a.split("=", 1)[1].split(",")
    else:
        sys.exit(f"unknown argument {a!r}")
SPLITS, RANDOM, THREADS = 20, 20, os.environ.get("THREADS", "1")


def num(x):
    return float(x) if x else float("nan")


def quantiles(v):
    v = sorted(x for x in v if x == x)
    if not v:
        return float("nan"), float("nan"), float("nan")
    q = lambda p: v[min(len(v) - 1, max(0, round((len(v) - 1) * p)))]
    return statistics.fmean(v), q(0.025), q(0.975)


def main():
    tmp = tempfile.mkdtemp()
    print(f"| network | layers compared (of all) | filters chosen on A per split | threshold chosen on A (dB) "
          f"| mean z per split | share of layers above the random mean | layers with p <= 0.05 | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    notes = []
    for model in MODELS:
        out = os.path.join(tmp, os.path.basename(model))
        cmd = ["importance-truth", "--model", model, "--analysis-images", ",".join(str(i) for i in range(100)),
               "--n-images", "2", "--bootstrap", "0", "--crossval-splits", str(SPLITS),
               "--crossval-random", str(RANDOM), "--threads", THREADS, "--force", "--out", out]
        t0 = time.time()
        subprocess.run([BIN, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        secs = time.time() - t0
        shown = " ".join("0,1,...,99" if a.startswith("0,1,2,") else a for a in cmd if a not in (out, "--out"))
        notes.append(f"$ flickertag {shown} --out DIR   # {secs:.0f} s")
        rows = list(csv.DictReader(open(os.path.join(out, "crossval_ablation.csv"))))
        by_split = {}
        for r in rows:
            by_split.setdefault(int(r["split"]), []).append(r)
        n_layers = len(by_split[0])
        compared, chosen, thresholds, zs, shares, sig = [], [], [], [], [], 0
        for s, rs in sorted(by_split.items()):
            c = [r for r in rs if num(r["random_mean"]) == num(r["random_mean"])]  # NaN: no comparison
            compared.append(len(c))
            chosen.append(sum(int(r["set_size"]) for r in rs))
            thresholds.append(float(rs[0]["threshold"]))
            z = [num(r["z"]) for r in c if num(r["z"]) == num(r["z"])]
            zs.append(statistics.fmean(z) if z else float("nan"))
            shares.append(statistics.fmean(float(r["delta_loss"]) > float(r["random_mean"]) for r in c)
                          if c else float("nan"))
            sig += sum(float(r["p_value"]) <= 0.05 for r in c)
        total = sum(compared)
        fmt = lambda t, d=2: f"{t[0]:.{d}f} [{t[1]:.{d}f}, {t[2]:.{d}f}]"
        print(f"| {model} | {statistics.median(compared):.0f} of {n_layers} (median) "
              f"| {statistics.median(chosen):.0f} (median) | {fmt(quantiles(thresholds), 3)} "
              f"| {fmt(quantiles(zs))} | {fmt(quantiles(shares))} | {sig} of {total} "
              f"(chance {0.05 * total:.0f}) | {secs:.0f} |", flush=True)
        summary = json.load(open(os.path.join(out, "importance_truth.json")))
        assert summary["crossval"]["config"]["splits"] == SPLITS
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
