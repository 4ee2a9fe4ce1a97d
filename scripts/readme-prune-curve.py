#!/usr/bin/env python3
"""Accuracy before fine-tuning against the MAC reduction, per criterion, with the band of
random pruning (5 seeds): the shipped ResNet-56 pruned structurally (Torch-Pruning, global
ranking) to 1.25x, 1.5x and 2.11x fewer MACs (within 2.5 %), top-1 on 2,000 test images (the first). Writes
docs/prune_resnet56_curve.png and prints every point with its command. About 15 minutes on
2 cores. Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/readme-prune-curve.py
(needs torch and torch-pruning)."""
import os
import sys

import numpy as np

from flickertag.pruning import prune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if "FLICKERTAG_DATA" not in os.environ:
    sys.exit("set FLICKERTAG_DATA")
RATIOS = [1.25, 1.5, 2.11]
CRITERIA = ["ft_authors", "ft_pass_fraction", "weight_l1", "bn_gamma"]
SEEDS = range(5)
N = 2000


def main():
    acc = {}
    for ratio in RATIOS:
        for crit, seed in [(c, 0) for c in CRITERIA] + [("random", s) for s in SEEDS]:
            # Within 2.5 % of the target: a channel of a coupled group moves the MACs in steps of up to ~2 %.
            _, info = prune("resnet56", criterion=crit, macs_ratio=ratio, seed=seed, eval_limit=N, progress=False,
                            tolerance=0.025)
            acc.setdefault(crit, {}).setdefault(ratio, []).append(info["top1_after"])
            print(f"$ flickertag prune --model resnet56 --criterion {crit} --seed {seed} --macs-ratio {ratio} "
                  f"--eval-limit {N} --out DIR  -> {info['top1_after']:.2f} % ({info['macs_ratio']:.3f}x)", flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    lo = [min(acc["random"][x]) for x in RATIOS]
    hi = [max(acc["random"][x]) for x in RATIOS]
    ax.fill_between(RATIOS, lo, hi, color="grey", alpha=0.3, label=f"random, {len(SEEDS)} seeds (range)")
    for crit in CRITERIA:
        ax.plot(RATIOS, [acc[crit][x][0] for x in RATIOS], marker="o", label=crit)
    ax.set_xlabel("MACs before / after")
    ax.set_ylabel(f"top-1 % before fine-tuning ({N} test images)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "docs", "prune_resnet56_curve.png"), dpi=110)
    print("| MACs ratio | " + " | ".join(CRITERIA) + " | random (mean, range) |")
    print("|---" * (len(CRITERIA) + 2) + "|")
    for x in RATIOS:
        rnd = acc["random"][x]
        print(f"| {x} | " + " | ".join(f"{acc[c][x][0]:.1f}" for c in CRITERIA)
              + f" | {np.mean(rnd):.1f} ({min(rnd):.1f}-{max(rnd):.1f}) |")


if __name__ == "__main__":
    main()
