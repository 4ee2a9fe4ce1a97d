#!/usr/bin/env bash
# Reruns the commands of the "Other figures" table of docs/benchmarks.md and prints each result with
# its command, then the statistics table (scripts/readme-statistics.py) and, with
# FLICKERTAG_SLOW=1, the pruning section (scripts/readme-pruning.py, about 35 minutes), the paradigms
# (scripts/readme-paradigms.py) and the ResNet-56 structural-pruning table (scripts/readme-prune-resnet56.py).
# About 6 minutes on 2 cores without the pruning (the whole-test-set analysis is 4 of them).
# Usage: FLICKERTAG_DATA=../shared/data [FLICKERTAG_SLOW=1] scripts/readme-figures.sh   (after make build)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FLICKERTAG_DATA:?set FLICKERTAG_DATA}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.cache/onnxruntime/1.31.1/libonnxruntime.so}"
f=$PWD/target/release/flickertag
out=$(mktemp -d)
run() { echo "\$ flickertag $*"; "$f" "$@"; }
timed() { # timed LABEL ARGS...: wall time, peak memory, and the analysis time from the summary
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/time" "$f" "$@" --quiet --force --out "$out/run" >/dev/null
  read -r wall kb <"$out/time"
  secs=$(python3 -c "import json; print(round(json.load(open('$out/run/summary.json'))['seconds'], 2))")
  echo "$label: flickertag $* -> ${secs} s analysis, ${wall} s wall, $((kb / 1024)) MB peak"
}
run bench --model resnet32 --batch 80 --threads 2 --frames 8000 --taps relu
run bench --taps none --threads 2 --frames 8000
run bench --taps conv --batch 49 --threads 2 --frames 9800
echo "\$ flickertag eval --model resnet32"; /usr/bin/time -f "%e s wall" "$f" eval --model resnet32
timed "10 images" analyze --model resnet32 --taps conv
timed "10 images, all frames" analyze --model resnet32 --taps conv --no-fold
timed "100 images" analyze --taps conv --n-images 100 --seed 1 --no-per-image --no-stats --threads 2
timed "conv + BN, 100 images" analyze --n-images 100 --seed 1 --taps conv,bn --no-stats --no-per-image
timed "10 images, memory" analyze --taps conv --n-images 10 --seed 1 --no-per-image --no-stats
timed "1,000 images, memory" analyze --taps conv --n-images 1000 --seed 1 --no-per-image --no-stats
timed "whole test set" analyze --taps conv --all-images --threads 2
rm -rf "$out"
python3 scripts/readme-statistics.py
if [ "${FLICKERTAG_SLOW:-0}" = 1 ]; then
  python3 scripts/readme-pruning.py
  # docs/paradigms.md (12 min) and the ResNet-56 table of docs/pruning.md (8 min, torch and torch-pruning).
  .venv/bin/python scripts/readme-paradigms.py
  .venv/bin/python scripts/readme-prune-resnet56.py
else
  echo "pruning and paradigm figures skipped (slow): FLICKERTAG_SLOW=1 $0, or scripts/readme-pruning.py," \
    "scripts/readme-paradigms.py, scripts/readme-prune-resnet56.py"
fi
