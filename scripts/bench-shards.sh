#!/usr/bin/env bash
# The figures of the "Shards, checkpoints and merge" benchmarks of docs/scale-out.md:
#  1. the whole CIFAR-10 test set (10,000 images) as 100 shards (--shard i/100), then
#     `flickertag merge` of the 100 partial runs: wall time and peak memory of the merge;
#  2. checkpointing cost: 1,000 images with --checkpoint-every 0 (none), 30 (default)
#     and 1 (every second), same options;
#  3. peak memory of analysis and merge against the number of images.
# Usage: FLICKERTAG_DATA=../shared/data scripts/bench-shards.sh [OUT_DIR]   (after make build)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FLICKERTAG_DATA:?set FLICKERTAG_DATA}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.cache/onnxruntime/1.31.1/libonnxruntime.so}"
bin=$PWD/target/release/flickertag
out=${1:-runs/bench-shards}
rm -rf "$out" && mkdir -p "$out"
t() { /usr/bin/time -f "%e s wall, %M KB peak" "$@" 2>&1 >/dev/null | tail -1; }
echo "## 100 shards of the whole test set (--threads 1 each)"
start=$(date +%s)
for i in $(seq 0 99); do
  "$bin" analyze --taps conv --all-images --shard "$i/100" --threads 1 --quiet --out "$out/parts/$i"
done
echo "shards: $(( $(date +%s) - start )) s in all"
echo "merge of 100 shards (10,000 images): $(t "$bin" merge "$out"/parts/* --out "$out/merged" --quiet)"

echo "## checkpointing, 1,000 seeded images, --threads 1"
for every in 0 30 1; do
  echo "--checkpoint-every $every: $(t "$bin" analyze --taps conv --n-images 1000 --seed 1 --no-stats --no-per-image --threads 1 --checkpoint-every "$every" --quiet --out "$out/ck$every")"
done
echo "## peak memory against images (analysis, --threads 1)"
for n in 100 1000; do
  echo "$n images: $(t "$bin" analyze --taps conv --n-images "$n" --seed 1 --no-stats --no-per-image --threads 1 --quiet --out "$out/mem$n")"
done
