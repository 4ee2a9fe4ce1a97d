#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library from its PyPI wheel (pinned) into a cache folder.
# Usage: scripts/fetch-ort.sh [CACHE_DIR]   (default: .cache/onnxruntime in the project)
# Prints the path of the extracted libonnxruntime.so on stdout.
set -euo pipefail
ORT_VERSION="${FLICKERTAG_ORT_VERSION:-1.31.1}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${1:-$here/.cache/onnxruntime}"
lib="$cache/$ORT_VERSION/libonnxruntime.so"
if [ -f "$lib" ]; then echo "$lib"; exit 0; fi
mkdir -p "$cache/$ORT_VERSION/wheel"
echo "fetching onnxruntime $ORT_VERSION wheel from PyPI into $cache" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --python-version 3.11 --implementation cp \
  -d "$cache/$ORT_VERSION/wheel" "onnxruntime==$ORT_VERSION" >&2
whl="$(ls "$cache/$ORT_VERSION/wheel"/onnxruntime-*.whl | head -n1)"
python3 - "$whl" "$lib" <<'PY'
import sys, zipfile, shutil
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so")]
    if not names:
        sys.exit(f"no libonnxruntime.so in {whl}")
    name = sorted(names, key=len)[-1]
    with z.open(name) as src, open(dest + ".tmp", "wb") as out:
        shutil.copyfileobj(src, out)
import os; os.replace(dest + ".tmp", dest)
PY
rm -rf "$cache/$ORT_VERSION/wheel"
echo "$lib"
