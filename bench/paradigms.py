"""The paradigms' cost on ResNet-32 (docs/benchmarks.md, `make bench`): a 10-class oddball
analysis (it cannot fold: every image of a stream differs, so its cost is stated per class
and per stream) a contrast sweep of four depths, and the models with time of tests/zoo/temporal/ (a 3-D
convolutional clip model and the trained recurrent network: nothing folds, the recurrent one
runs one frame per call until its state settles), each timed as a whole command.
Usage: python3 bench/paradigms.py FLICKERTAG_BIN OUT_DIR"""
import json
import os
import subprocess
import sys
import time


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    bin, out = sys.argv[1:3]
    odd = os.path.join(out, "oddball")
    cmd = [bin, "oddball", "--model", "resnet32", "--threads", "2", "--quiet", "--force", "--out", odd]
    wall = timed(cmd)
    s = json.load(open(os.path.join(odd, "oddball.json")))
    classes, streams = len(s["classes"]), s["config"]["streams"]
    print(f"oddball, ResNet-32, {classes - 1} classes + the null control x {streams} streams of "
          f"{s['timing']['images']} images ({s['frames_run']} distinct frames run): {wall:.1f} s whole command, "
          f"{wall / classes:.2f} s per class, {wall / (classes * streams):.3f} s per stream, "
          f"{s['frames_run'] / s['seconds']:.0f} frames/s in the analysis")
    print(f"  $ {' '.join(os.path.basename(c) if c == bin else c for c in cmd)}")
    sweep = os.path.join(out, "sweep")
    cmd = [bin, "analyze", "--model", "resnet32", "--taps", "conv", "--no-stats", "--contrast-sweep",
           "0.125,0.25,0.5,1", "--threads", "2", "--quiet", "--force", "--out", sweep]
    wall = timed(cmd)
    print(f"contrast sweep, ResNet-32, the paper's ten images, 4 depths: {wall:.1f} s whole command")
    print(f"  $ {' '.join(os.path.basename(c) if c == bin else c for c in cmd)}")
    zoo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "flickertag-cli", "tests", "zoo")
    for name in ("clip3d", "recurrent"):
        run = os.path.join(out, name)
        model = os.path.join(zoo, "temporal", f"{name}.legacy.onnx")
        cmd = [bin, "analyze", "--model", model, "--image-file", os.path.join(zoo, "image.png"), "--taps", "all",
               "--no-stats", "--threads", "2", "--quiet", "--force", "--out", run]
        wall = timed(cmd)
        s = json.load(open(os.path.join(run, "summary.json")))
        print(f"model with time, {name} ({s['model']['time']['kind']}), one image, {s['inference']['frames_per_image']} "
              f"frames, all taps: {wall:.2f} s whole command")
        print(f"  $ {' '.join(os.path.relpath(c) if c == model else os.path.basename(c) if c == bin else c for c in cmd)}")


if __name__ == "__main__":
    main()
