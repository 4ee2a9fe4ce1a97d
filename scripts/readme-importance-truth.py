#!/usr/bin/env python3
"""Reruns the ground-truth table of docs/pruning.md ("What does a high score predict?") on
pretrained CIFAR ResNets of the data folder (ResNet-20 and -32 by default; `--models=resnet20,resnet32,resnet56` adds ResNet-56, about 20 minutes more) and prints every figure
with the call that produced it; copies ResNet-32's figure into docs/. About 21 minutes on
2 cores (measured: 431 s and 838 s; 4 layers x 128 filters per network, each ablated alone on
5,000 test images).
It runs the Python package (flickertag.importance_truth, which adds the Taylor criterion
through torch): the project's .venv after `make python` has both.
Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/readme-importance-truth.py [RUNS_DIR]
(with RUNS_DIR holding finished runs, only the tables are printed; --missing runs only the
networks whose run folder is not there yet; --models=a,b picks the networks)."""
import csv
import json
import os
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["resnet20", "resnet32"]
LAYERS = "conv1,layer1.1.conv1,layer2.1.conv1,layer3.1.conv1"
OPTIONS = dict(layers=LAYERS.split(","), n_images=5000, threads=2)


def rows(run):
    return list(csv.DictReader(open(os.path.join(run, "importance_correlation.csv"))))


def cell(r):
    return f"{float(r['rho']):.2f} [{float(r['ci_low']):.2f}, {float(r['ci_high']):.2f}]"


def main():
    global MODELS
    missing = "--missing" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--missing" and not a.startswith("--models")]
    for a in sys.argv[1:]:
        if a.startswith("--models="):
            MODELS = a.split("=", 1)[1].split(",")
    reuse = bool(args)
    runs = args[0] if reuse else os.path.join(ROOT, "runs", "readme-truth")
    if not reuse and "FLICKERTAG_DATA" not in os.environ:
        sys.exit("set FLICKERTAG_DATA")
    for m in MODELS:
        if not reuse and not (missing and os.path.exists(os.path.join(runs, m, "importance_truth.json"))):
            import flickertag

            t = time.time()
            flickertag.importance_truth(m, out=os.path.join(runs, m), overwrite=True, progress=False, **OPTIONS)
            print(f"{m}: wall {time.time() - t:.0f} s", flush=True)
    shown = ", ".join(f"{k}={v!r}" for k, v in OPTIONS.items())
    print(f">>> flickertag.importance_truth(MODEL, out=DIR, {shown})   # MODEL: {', '.join(MODELS)}; "
          f"Taylor through torch\n")
    per_layer = {}  # (criterion, truth) -> [(rho, ci_low, ci_high, reliability) of every layer of every network]
    for m in MODELS:
        run = os.path.join(runs, m)
        info = json.load(open(os.path.join(run, "importance_truth.json")))
        print(f"**{m}**: {info['filters']} filters, intact top-1 {info['base_top1']:.2f} % and loss "
              f"{info['base_loss']:.4f} on {len(info['config']['images'])} test images; "
              f"{info['seconds']:.0f} s\n")
        rs = rows(run)
        scopes = list(dict.fromkeys(r["scope"] for r in rs))
        crits = list(dict.fromkeys(r["criterion"] for r in rs))
        for truth in ["delta_loss", "delta_top1"]:
            rel = {r["scope"]: float(r["rho"]) for r in rs if r["criterion"] == "reliability" and r["truth"] == truth}
            print(f"Spearman's rho with {truth} [95 % BCa interval over images]:\n")
            print("| criterion | " + " | ".join(scopes) + " |")
            print("|---|" + "---|" * len(scopes))
            for c in crits:
                got = {r["scope"]: r for r in rs if r["criterion"] == c and r["truth"] == truth}
                if c == "reliability":
                    print(f"| reliability of the truth | " + " | ".join(f"{float(got[s]['rho']):.2f}" for s in scopes)
                          + " |")
                    continue
                print(f"| `{c}` | " + " | ".join(cell(got[s]) for s in scopes) + " |")
                for s in scopes:
                    if s != "all":
                        g = got[s]
                        per_layer.setdefault((c, truth), []).append(
                            (float(g["rho"]), float(g["ci_low"]), float(g["ci_high"]), rel[s]))
            print()
    n = len(next(iter(per_layer.values())))
    for label, keep in [("every layer", lambda x: True), ("layers whose truth has reliability >= 0.5",
                                                         lambda x: x[3] >= 0.5)]:
        some = [x for x in next(iter(per_layer.values())) if keep(x)]
        print(f"\nOver {label} ({len(some)} of {n}; {len(MODELS)} networks x 4 layers), rho with delta_loss: "
              f"median, range, layers whose interval is above 0 / below 0:\n")
        print("| criterion | median rho | range | above 0 | below 0 |")
        print("|---|---|---|---|---|")
        for (c, truth), v in per_layer.items():
            v = [x for x in v if keep(x)]
            if truth != "delta_loss" or not v:
                continue
            rho = [x[0] for x in v]
            print(f"| `{c}` | {statistics.median(rho):.2f} | {min(rho):.2f} to {max(rho):.2f} | "
                  f"{sum(x[1] > 0 for x in v)} | {sum(x[2] < 0 for x in v)} |")
    if not reuse or os.path.exists(os.path.join(runs, "resnet32", "plots", "importance_truth.png")):
        shutil.copy(os.path.join(runs, "resnet32", "plots", "importance_truth.png"),
                    os.path.join(ROOT, "docs", "importance_truth.png"))


if __name__ == "__main__":
    main()
