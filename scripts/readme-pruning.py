#!/usr/bin/env python3
"""Reruns the pruning experiment of docs/pruning.md (ResNet-32) and prints every figure of its
pruning section with the command that produced it; copies the network-wide and conv #4
figures into docs/. Slow: about 35 minutes on 2 cores (not run in CI).
Usage: FLICKERTAG_DATA=../shared/data python3 scripts/readme-pruning.py [RUN_FOLDER]
(after make build; with RUN_FOLDER holding a finished run, only the tables are printed).
Standard library only: it reads the run folder flickertag writes."""
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "flickertag")
os.environ.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".cache/onnxruntime/1.31.1/libonnxruntime.so"))
ARGS = ["prune-eval", "--model", "resnet32", "--n-images", "1000", "--seed", "0", "--layers", "#1,#4,#31",
        "--threads", "2"]


def run(out):
    if "FLICKERTAG_DATA" not in os.environ:
        sys.exit("set FLICKERTAG_DATA")
    t = time.time()
    subprocess.run([BIN, *ARGS, "--quiet", "--force", "--out", out], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"wall {time.time() - t:.0f} s, peak resident memory {peak:.0f} MB")


def verdict(x):
    """The verdict as flickertag words it (prune::curves::verdicts), also for a run made
    before "beyond every seed, unresolved" existed: p at the Monte Carlo floor
    2 / (seeds + 1) with q > 0.05 is that, not "like random"."""
    p, q, n = float(x["p_value"]), float(x["q_value"]), int(x["random_seeds"])
    if q > 0.05 and p <= 2 / (n + 1) + 1e-9 and x["verdict"] == "like random":
        return "beyond every seed, unresolved"
    return x["verdict"]


def fmt_pct(p):
    return "—" if p == "nan" else f"{float(p):.1f}"


def main():
    reuse = len(sys.argv) > 1
    out = sys.argv[1] if reuse else os.path.join(ROOT, "runs", "readme-prune")
    if not reuse:
        run(out)
    print(f"$ flickertag {' '.join(ARGS)}")
    r = json.load(open(os.path.join(out, "prune.json")))
    rows = list(csv.DictReader(open(os.path.join(out, "prune_summary.csv"))))
    print(f"unpruned top-1 on the {len(r['config']['images'])} images: {r['base_top1']:.2f} %; "
          f"{r['evaluations']} ablations in {r['seconds']:.0f} s; statistics over {r['statistics_images']} "
          f"held-out test images; {r['config']['random_seeds']} random seeds, {r['config']['bootstrap']} resamples")
    for scope in dict.fromkeys(x["scope"] for x in rows):
        print(f"\n### {scope}\n")
        for abl in dict.fromkeys(x["ablation"] for x in rows):
            sub = [x for x in rows if x["scope"] == scope and x["ablation"] == abl]
            lo = {x["criterion"]: x for x in sub if x["order"] == "lowest-first"}
            hi = {x["criterion"]: x for x in sub if x["order"] == "highest-first"}
            first = sub[0]
            print(f"{abl}-ablation: random ({first['random_seeds']} seeds) AUC "
                  f"{float(first['random_mean']):.1f} ± {float(first['random_sd']):.1f}\n")
            print("| criterion | order | AUC [95 % CI] | effect: AUC − random mean [paired 95 % CI] | "
                  "percentile | p | q (BH) | verdict |")
            print("|---|---|---|---|---|---|---|---|")
            for c in lo:
                for x, order in [(lo[c], "keeping (lowest-first)"), (hi[c], "removing (highest-first)")]:
                    print(f"| `{c}` | {order} | {float(x['auc']):.1f} [{float(x['auc_ci_low']):.1f}, "
                          f"{float(x['auc_ci_high']):.1f}] | {float(x['effect']):+.1f} "
                          f"[{float(x['effect_ci_low']):+.1f}, {float(x['effect_ci_high']):+.1f}] | "
                          f"{fmt_pct(x['random_percentile'])} | {float(x['p_value']):.3f} | "
                          f"{float(x['q_value']):.3f} | {verdict(x)} |")
            print()
    docs = os.path.join(ROOT, "docs")
    for scope, name in [("network", "prune_network.png"), ("layer1.1.conv1", "prune_conv4.png")]:
        src = os.path.join(out, "plots", f"prune_{scope}.png")
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(docs, name))
            print(f"copied {src} to docs/{name}")


if __name__ == "__main__":
    main()
