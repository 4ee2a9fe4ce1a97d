#!/usr/bin/env python3
"""Reruns the class-activation-map table of docs/cam.md ("Does tagging selection beat
the same layer without it?") on the pretrained ResNet-32 of the data folder and prints
every figure with the call that produced it; copies the grid of maps into docs/.
1,000 seeded localisation cases (64 x 64 canvases), five methods (Score-CAM, Ablation-CAM
and EigenCAM in the library; Grad-CAM and Grad-CAM++ through torch), four channel sets,
8 insertion/deletion steps. The wall time is printed (and stored in cam.json).
It runs the Python package (flickertag.cam, which adds the gradient methods through
torch): the project's .venv after `make python` has both.
Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/readme-cam.py [RUN_DIR]
(with RUN_DIR holding a finished run, only the tables are printed)."""
import csv
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.abspath(__file__)) + "/.."
MODEL = "resnet32"
OPTIONS = dict(n_cases=1000, steps=8, criterion="ft_authors", keep_maps=4, seed=0)


def main():
    reuse = len(sys.argv) > 1
    run = sys.argv[1] if reuse else os.path.join(ROOT, "runs", "readme-cam", MODEL)
    if not reuse:
        if "FLICKERTAG_DATA" not in os.environ:
            sys.exit("set FLICKERTAG_DATA")
        import flickertag

        t = time.time()
        flickertag.cam(MODEL, out=run, overwrite=True, progress=False, gradients=True, **OPTIONS)
        print(f"{MODEL}: wall {time.time() - t:.0f} s (including Grad-CAM through torch)", flush=True)
    info = json.load(open(os.path.join(run, "cam.json")))
    shown = ", ".join(f"{k}={v!r}" for k, v in OPTIONS.items())
    print(f">>> flickertag.cam({MODEL!r}, out=DIR, gradients=True, {shown})\n")
    cfg = info["config"]
    print(f"**{MODEL}**, layer `{info['layer']}` ({info['channels']} channels, "
          f"{info['map_size'][0]} x {info['map_size'][1]} maps on the canvas); {info['cases']} cases on "
          f"{cfg['canvas']} x {cfg['canvas']} {cfg['background']} canvases (the box is {info['box_share']:.0%} of "
          f"the canvas); the network names the object on {info['canvas_top1']:.1f} % of them; k = {cfg['k']} "
          f"channels by `{cfg['criterion']}`; library time {info['seconds']:.0f} s.\n")
    rows = list(csv.DictReader(open(os.path.join(run, "cam_comparison.csv"))))
    metrics = ["energy", "pointing", "insertion", "deletion"]
    for r in rows:
        r.setdefault("against", "all")  # runs before the tagging-against-random rows
    pairs = [(s, "all") for s in ("tagging", "random", "bottom")]
    if any(r["against"] == "random" for r in rows):
        pairs.append(("tagging", "random"))
    for s, against in pairs:
        print(f"`{s}` − `{against}` (mean paired difference [95 % BCa interval over cases]; deletion: lower is "
              f"better):\n")
        print("| method | " + " | ".join(metrics) + " |")
        print("|---|" + "---|" * len(metrics))
        methods = list(dict.fromkeys(r["method"] for r in rows))
        for m in methods:
            cells = []
            for x in metrics:
                r = next(r for r in rows if r["method"] == m and r["set"] == s and r["against"] == against
                         and r["metric"] == x)
                mark = {"better": " **better**", "worse": " *worse*"}.get(r["verdict"], "")
                cells.append(f"{float(r['difference']):+.3f} [{float(r['ci_low']):+.3f}, {float(r['ci_high']):+.3f}]{mark}")
            print(f"| {m} | " + " | ".join(cells) + " |")
        print()
    print("`all` itself (mean over cases):\n")
    print("| method | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for m in dict.fromkeys(r["method"] for r in rows):
        cells = [f"{float(next(r for r in rows if r['method'] == m and r['against'] == 'all' and r['metric'] == x)['control']):.3f}"
                 for x in metrics]
        print(f"| {m} | " + " | ".join(cells) + " |")
    grid = os.path.join(run, "plots", "cam_grid.png")
    if os.path.exists(grid):
        shutil.copy(grid, os.path.join(ROOT, "docs", "cam_grid.png"))


if __name__ == "__main__":
    main()
