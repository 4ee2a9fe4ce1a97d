"""The cost of class activation maps on ResNet-32 (docs/benchmarks.md, `make bench`):
Score-CAM alone on the localisation set (one forward per channel of the layer per case,
batched, then insertion and deletion of each channel set's map), timed as a whole command.
BENCH_CAM_CASES sets the cases (default 1000, the size of the docs/cam.md table).
Usage: python3 bench/cam.py FLICKERTAG_BIN OUT_DIR"""
import json
import os
import subprocess
import sys
import time


def main():
    bin, out = sys.argv[1:3]
    n = os.environ.get("BENCH_CAM_CASES", "1000")
    run = os.path.join(out, "cam")
    cmd = [bin, "cam", "--model", "resnet32", "--methods", "score-cam", "--n-cases", n, "--steps", "8",
           "--threads", "2", "--quiet", "--force", "--out", run]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    s = json.load(open(os.path.join(run, "cam.json")))
    forwards = s["cases"] * (s["channels"] + 4 * 2 * (s["config"]["steps"] - 1) + 1)
    print(f"Score-CAM, ResNet-32, {s['cases']} localisation cases ({s['config']['canvas']} x {s['config']['canvas']}), "
          f"{s['channels']} channels, 4 sets x insertion and deletion: {wall:.1f} s whole command "
          f"({wall / s['cases']:.2f} s per case, {forwards / s['seconds']:.0f} canvas forwards/s)")
    print(f"  $ {' '.join(os.path.basename(c) if c == bin else c for c in cmd)}")


if __name__ == "__main__":
    main()
