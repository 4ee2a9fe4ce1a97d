#!/usr/bin/env python3
"""The ResNet-56 table of docs/pruning.md: the shipped ResNet-56 pruned structurally
(Torch-Pruning, global ranking, the final classifier kept) to 2.11x fewer MACs by each
criterion and by random scores (10 seeds), top-1 on the whole CIFAR-10 test set *before
any fine-tuning*, with 95 % bootstrap intervals over the test images, beside
Torch-Pruning's published figures. Prints the table with the command behind each row and
writes docs/prune_resnet56.png. About 12 minutes on 2 cores.
Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/readme-prune-resnet56.py
Needs torch and torch-pruning in the environment (pip install 'flickertag[pruning]')."""
import json
import os
import sys

import numpy as np

import flickertag
from flickertag.pruning import prune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if "FLICKERTAG_DATA" not in os.environ:
    sys.exit("set FLICKERTAG_DATA")
CRITERIA = ["ft_authors", "ft_pass_fraction", "ft_integration", "weight_l1", "bn_gamma"]
SEEDS = range(int(os.environ.get("RANDOM_SEEDS", "10")))
RATIO = 2.11


def interval(correct, n, b=4000, seed=0):
    """95 % percentile bootstrap of the accuracy over the n test images (resampling images
    with replacement is a binomial draw of the correct count)."""
    draws = np.random.default_rng(seed).binomial(n, correct / n, size=b) / n * 100
    return np.percentile(draws, [2.5, 97.5])


def main():
    rows = []
    for crit, seed in [(c, 0) for c in CRITERIA] + [("random", s) for s in SEEDS]:
        _, info = prune("resnet56", criterion=crit, macs_ratio=RATIO, seed=seed, progress=False)
        correct = round(info["top1_after"] * info["eval_images"] / 100)
        lo, hi = interval(correct, info["eval_images"])
        rows.append((crit, seed, info, lo, hi))
        print(f"$ flickertag prune --model resnet56 --criterion {crit} --seed {seed} --macs-ratio {RATIO} --out DIR"
              f"  -> {info['top1_after']:.2f} % [{lo:.2f}, {hi:.2f}], {info['macs_before'] / 1e6:.2f} M -> "
              f"{info['macs_after'] / 1e6:.2f} M MACs ({info['macs_ratio']:.3f}x), params {info['params_after']:,}, "
              f"speed-up {info['speedup']:.2f}x", flush=True)
    base = rows[0][2]["top1_before"]
    print(f"\nunpruned (ours, option-A shortcuts as selection convs): top-1 {base:.2f} %, "
          f"{rows[0][2]['macs_before'] / 1e6:.2f} M MACs, {rows[0][2]['params_before']:,} parameters")
    print("| criterion | top-1 before fine-tuning | 95 % CI | MACs after | parameters after | speed-up |")
    print("|---|---|---|---|---|---|")
    for crit, seed, info, lo, hi in rows[: len(CRITERIA)]:
        print(f"| {crit} | {info['top1_after']:.2f} | [{lo:.2f}, {hi:.2f}] | {info['macs_after'] / 1e6:.2f} M | "
              f"{info['params_after']:,} | {info['speedup']:.2f}x |")
    rnd = np.array([r[2]["top1_after"] for r in rows[len(CRITERIA):]])
    print(f"| random ({len(rnd)} seeds) | {rnd.mean():.2f} ± {rnd.std(ddof=1):.2f} (min {rnd.min():.2f}, "
          f"max {rnd.max():.2f}) | | | | |")
    json.dump([{"criterion": c, "seed": s, **{k: v for k, v in i.items() if k != "channels"}, "ci": [lo, hi]}
               for c, s, i, lo, hi in rows], open(os.path.join(ROOT, "runs", "prune_resnet56.json"), "w"), indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = [r[0] for r in rows[: len(CRITERIA)]]
    acc = [r[2]["top1_after"] for r in rows[: len(CRITERIA)]]
    err = np.array([[a - r[3], r[4] - a] for a, r in zip(acc, rows)]).T
    ax.barh(names, acc, xerr=err, color="#4878a8")
    ax.axvspan(rnd.min(), rnd.max(), color="grey", alpha=0.3, label=f"random, {len(rnd)} seeds (range)")
    ax.axvline(28.08, color="#c44", ls="--", label="Torch-Pruning group L1, published (28.08 %)")
    ax.axvline(11.15, color="#a6a", ls=":", label="Torch-Pruning group BN, published (11.15 %)")
    ax.set_xlabel(f"top-1 % on the CIFAR-10 test set, before fine-tuning ({RATIO}x fewer MACs)")
    ax.set_xlim(0, 100)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "docs", "prune_resnet56.png"), dpi=110)


if __name__ == "__main__":
    os.makedirs(os.path.join(ROOT, "runs"), exist_ok=True)
    main()
