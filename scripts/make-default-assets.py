#!/usr/bin/env python3
"""Builds the embedded default of flickertag (crates/flickertag/assets/) from a data folder.

- resnet32-cifar10.th: the pretrained ResNet-32 of akamaster/pytorch_resnet_cifar10
  (BSD-2-Clause), copied byte for byte; its SHA-256 is checked.
- paper_images.bin: the first CIFAR-10 test image of each class, in class order
  (10 records of 3,073 bytes: label byte, then the R, G and B planes), taken from the
  exact test_batch.bin, whose SHA-256 is checked too.

Usage: scripts/make-default-assets.py [DATA_DIR]   (default $FLICKERTAG_DATA or ../shared/data)
"""
import hashlib
import os
import sys

RESNET32_SHA256 = "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850"
TEST_BATCH_SHA256 = "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"
RECORD = 3073


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main() -> None:
    data = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FLICKERTAG_DATA", "../shared/data")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "flickertag", "assets")
    weights = open(os.path.join(data, "models", "resnet32-cifar10.th"), "rb").read()
    assert sha256(weights) == RESNET32_SHA256, "resnet32-cifar10.th is not the published file"
    test = open(os.path.join(data, "cifar10", "test_batch.bin"), "rb").read()
    assert sha256(test) == TEST_BATCH_SHA256, "test_batch.bin is not the official file"
    records = [test[i * RECORD:(i + 1) * RECORD] for i in range(len(test) // RECORD)]
    first = []
    for c in range(10):
        i = next(i for i, r in enumerate(records) if r[0] == c)
        first.append(i)
    print("first test image of each class:", first)
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "resnet32-cifar10.th"), "wb").write(weights)
    open(os.path.join(out, "paper_images.bin"), "wb").write(b"".join(records[i] for i in first))
    with open(os.path.join(out, "paper_images.txt"), "w") as f:
        f.write(" ".join(map(str, first)) + "\n")


if __name__ == "__main__":
    main()
