#!/usr/bin/env python3
"""Reruns the commands behind the "Models with time" section of docs/paradigms.md and prints
its tables with the commands beside them: the region-swap test on the same 20 CIFAR-10 test
images for ResNet-32 (each frame alone), the 3-D convolutional clip model and the trained
recurrent network of tests/zoo/temporal/ (scripts/make-temporal-models.py), and a run of a
randomly initialised torchvision r3d_18 video network for coverage. About 10 minutes on 2 cores.
Usage: FLICKERTAG_DATA=../shared/data .venv/bin/python scripts/readme-temporal.py   (after make build)
Needs torch and torchvision (the project's .venv) for r3d_18."""
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "flickertag")
ZOO = os.path.join(ROOT, "crates", "flickertag-cli", "tests", "zoo", "temporal")
os.environ.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".cache/onnxruntime/1.31.1/libonnxruntime.so"))
if "FLICKERTAG_DATA" not in os.environ:
    sys.exit("set FLICKERTAG_DATA")


def flickertag(out, *args):
    cmd = [*args, "--quiet", "--force", "--out", out]
    t = time.time()
    subprocess.run([BIN, *cmd], check=True)
    shown = [os.path.relpath(a, ROOT) if os.path.isabs(a) else a for a in cmd if a not in (out, "--out")]
    print(f"$ flickertag {' '.join(shown)} --out DIR   ({time.time() - t:.0f} s)")
    return time.time() - t


def swap_counts(run):
    rows = list(csv.DictReader(open(os.path.join(run, "region_swap.csv"))))
    region = sum(r["follows_region"] == "true" for r in rows)
    freq = sum(r["follows_frequency"] == "true" for r in rows)
    return len(rows), region, freq


def r3d18(path):
    import torch
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.video.r3d_18(weights=None, num_classes=10).eval()
    torch.onnx.export(m, (torch.zeros(2, 3, 8, 32, 32),), path, dynamo=False, opset_version=17,
                      input_names=["clip"], output_names=["logits"],
                      dynamic_axes={"clip": {0: "batch"}, "logits": {0: "batch"}})
    import onnx

    p = onnx.load(path)
    # torchvision's video models are normalized with the Kinetics mean and std.
    p.metadata_props.add(key="flickertag.mean", value="0.43216,0.394666,0.37645")
    p.metadata_props.add(key="flickertag.std", value="0.22803,0.22145,0.216989")
    onnx.save(p, path)


def main():
    info = json.load(open(os.path.join(ZOO, "temporal.json")))
    rec = info["recurrent"]
    print(f"recurrent network: CIFAR-10 test accuracy {rec['cifar10_test_accuracy']:.2f} % "
          f"({rec['frames_per_image_in_training']} frames per image; scripts/make-temporal-models.py)\n")
    images = ["--n-images", "20", "--seed", "0"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in [
            ("ResNet-32 (each frame alone)", "resnet32"),
            ("clip3d (3-D conv, 8-frame clips, random)", os.path.join(ZOO, "clip3d.legacy.onnx")),
            ("recurrent (trained, leak 1/2 per frame)", os.path.join(ZOO, "recurrent.legacy.onnx")),
        ]:
            out = os.path.join(tmp, "run")
            secs = flickertag(out, "analyze", "--model", model, *images, "--taps", "conv", "--region-swap",
                              "--no-stats")
            n, region, freq = swap_counts(out)
            rows.append((label, n, region, freq, n - region - freq, secs))
            # The report's spectrum of the last conv tap's most important filter, into docs/.
            figure = {"clip3d": ("conv2", "temporal_spectrum_clip3d.png"),
                      "recurrent": ("conv_h", "temporal_spectrum_recurrent.png")}.get(label.split()[0])
            if figure:
                src = sorted(glob.glob(os.path.join(out, "plots", f"spectrum_{figure[0]}_*.png")))[0]
                shutil.copy(src, os.path.join(ROOT, "docs", figure[1]))
                print(f"  figure: docs/{figure[1]} (the run's {os.path.relpath(src, out)})")
        print()
        print("| model | conv filters | follow the region | follow the frequency | neither | seconds |")
        print("|---|---|---|---|---|---|")
        for label, n, region, freq, neither, secs in rows:
            print(f"| {label} | {n} | {region} | {freq} | {neither} | {secs:.0f} |")
        print()
        path = os.path.join(tmp, "r3d_18.onnx")
        r3d18(path)
        out = os.path.join(tmp, "r3d")
        taps = json.loads(subprocess.run([BIN, "taps", "--json", path], check=True, capture_output=True).stdout)
        secs = flickertag(out, "analyze", "--model", path, "--images", "0,1", "--taps", "conv", "--no-stats")
        s = json.load(open(os.path.join(out, "summary.json")))
        layers = s["layers"]
        print(f"torchvision r3d_18 (random weights, clips [N, 3, 8, 32, 32], exported with "
              f"torch.onnx.export): {len(taps['taps'])} taps found, {len(layers)} conv taps "
              f"({sum(l['n_filters'] for l in layers)} filters) analysed on 2 images of 240 frames in "
              f"{secs:.0f} s; time mode: {s['model']['time']}")


if __name__ == "__main__":
    main()
