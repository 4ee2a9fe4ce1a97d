#!/usr/bin/env python3
"""What training produces, on several trained networks: each is analysed with its 20
permuted controls (each weight tensor shuffled, every conv put back at the trained
network's operating point), and each network-wide statistic of the trained network is
placed among its controls (percentile, Monte Carlo p). Networks: the four pretrained
CIFAR ResNets of the data folder, and every network of models/trained/trained.json (ResNet-20s
trained here from different seeds by scripts/train-cifar-resnets.py). Prints the table of
docs/statistics.md ("Several trained networks") with the command of each run, and,
over the training runs of models/trained (one architecture, several seeds), each
statistic's difference trained - control mean with a 95 % t interval over runs.
Usage: FLICKERTAG_DATA=../shared/data python3 scripts/readme-training.py [RUNS_DIR]   (after make build;
with RUNS_DIR holding finished runs only the tables are printed). Resumable: a network whose run
folder in runs/readme-training already holds its control_networks.csv is not run again (delete the
folder to rerun all, as after a change of flickertag). Standard library only."""
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "flickertag")
os.environ.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".cache/onnxruntime/1.31.1/libonnxruntime.so"))
ARGS = ["--taps", "conv", "--n-images", "100", "--seed", "1", "--control", "permuted", "--no-per-image",
        "--threads", "2", "--quiet", "--force"]
STATS = ["important", "mean_score", "intermod_share", "integration", "abs_selectivity"]


def t975(df):
    """The 97.5th percentile of Student's t with `df` degrees of freedom (standard library
    only: the density integrated by Simpson's rule, the quantile by bisection)."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    dens = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)

    def cdf(x, n=2000):  # P(0 < T < x) + 0.5
        h = x / n
        return 0.5 + h / 3 * (dens(0) + dens(x) + sum((4 if i % 2 else 2) * dens(i * h) for i in range(1, n)))

    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < 0.975 else (lo, mid)
    return lo


def networks():
    out = [(m, m, "pretrained (akamaster), data folder") for m in ("resnet20", "resnet32", "resnet44", "resnet56")]
    index = os.path.join(ROOT, "models", "trained", "trained.json")
    if os.path.exists(index):
        for name, info in sorted(json.load(open(index)).items()):
            out.append((name, os.path.join(ROOT, "models", "trained", f"{name}.th"),
                        f"trained here, seed {info['seed']}, {info['epochs']} epochs, "
                        f"{info['test_accuracy']:.2f} % test"))
    return out


def main():
    reuse = len(sys.argv) > 1
    runs = sys.argv[1] if reuse else os.path.join(ROOT, "runs", "readme-training")
    if not reuse and "FLICKERTAG_DATA" not in os.environ:
        sys.exit("set FLICKERTAG_DATA")
    rows = {}
    for name, model, what in networks():
        out = os.path.join(runs, name)
        if not reuse and not os.path.exists(os.path.join(out, "control_networks.csv")):
            t = time.time()
            subprocess.run([BIN, "analyze", "--model", model, *ARGS, "--out", out], check=True)
            print(f"{name}: {time.time() - t:.0f} s", flush=True)
        rows[name] = (what, {r["statistic"]: r for r in csv.DictReader(open(os.path.join(out, "control_networks.csv")))
                             if r["level"] == "(network)"})
    print(f"$ flickertag analyze --model MODEL {' '.join(ARGS)} --out DIR\n")
    print("| network | " + " | ".join(STATS) + " |")
    print("|---|" + "---|" * len(STATS))
    for name, (what, r) in rows.items():
        cells = [f"{float(r[s]['trained']):.3g} vs {float(r[s]['control_mean']):.3g}: pct {float(r[s]['percentile']):.0f}, "
                 f"p {float(r[s]['p_value']):.2f}" for s in STATS]
        print(f"| {name} ({what}) | " + " | ".join(cells) + " |")
    n = len(rows)
    print(f"\nOver the {n} networks (each against its own {rows[next(iter(rows))][1][STATS[0]]['n_controls']} controls):\n")
    for s in STATS:
        pct = [float(r[s]["percentile"]) for _, r in rows.values()]
        z = [(float(r[s]["trained"]) - float(r[s]["control_mean"])) / float(r[s]["control_sd"])
             for _, r in rows.values() if float(r[s]["control_sd"]) > 0]
        above = sum(p == 100 for p in pct)
        below = sum(p == 0 for p in pct)
        print(f"- {s}: above every control in {above} of {n}, below every control in {below} of {n}; "
              f"percentiles {', '.join(f'{p:.0f}' for p in pct)}; (trained - control mean) / control SD: median "
              f"{statistics.median(z):+.2f}, range {min(z):+.2f} to {max(z):+.2f} (the {len(z)} of {n} networks whose "
              "controls vary)")
    # Training runs of one architecture (the networks of models/trained): how much the
    # difference trained - control mean varies between runs, with a t interval over runs.
    runs_here = [r for what, r in rows.values() if what.startswith("trained here")]
    if len(runs_here) >= 2:
        k = len(runs_here)
        q = t975(k - 1)
        print(f"\nOver the {k} training runs of one architecture (models/trained), trained - control mean "
              f"(mean over runs, 95 % t interval over runs, t = {q:.3f} for {k - 1} degrees of freedom):\n")
        for s in STATS:
            d = [float(r[s]["trained"]) - float(r[s]["control_mean"]) for r in runs_here]
            m, sd = statistics.fmean(d), statistics.stdev(d)
            half = q * sd / math.sqrt(k)
            trained = ", ".join(f"{float(r[s]['trained']):.4g}" for r in runs_here)
            print(f"- {s}: {m:+.4g} [{m - half:+.4g}, {m + half:+.4g}]; per run "
                  f"{', '.join(f'{x:+.4g}' for x in d)}; trained values {trained}")


if __name__ == "__main__":
    # Published values (any table of Student's t): 12.706 (1), 2.776 (4), 2.228 (10).
    assert all(abs(t975(df) - v) < 2e-3 for df, v in [(1, 12.706), (4, 2.776), (10, 2.228)]), "t975"
    main()
