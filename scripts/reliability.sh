#!/usr/bin/env bash
# The reliability table of docs/reliability.md: every hostile input of crates/flickertag-cli/tests/hostile.rs
# (written out by the tests) and every bad parameter, run through the release binary
# under /usr/bin/time -v; prints one markdown row each: input, size, exit code,
# peak resident memory, wall time, and the error's first line.
# Usage: scripts/reliability.sh   (after `make build`; FLICKERTAG_DATA for the data cases)
set -uo pipefail
cd "$(dirname "$0")/.."
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.cache/onnxruntime/1.31.1/libonnxruntime.so}"
bin=$PWD/target/release/flickertag
keep=$PWD/runs/hostile
rm -rf "$keep" && mkdir -p "$keep"
FLICKERTAG_KEEP_HOSTILE="$keep" cargo test --release --quiet --test hostile >/dev/null 2>&1 \
  || { echo "the hostile tests fail" >&2; exit 1; }
work=$(mktemp -d)
row() { # row LABEL SIZE CMD...
  local label=$1 size=$2; shift 2
  /usr/bin/time -v "$@" >"$work/out" 2>"$work/err"; local code=$?
  local rss wall msg
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$work/err")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/err")
  msg=$(grep -m1 -E '^error' "$work/err" | sed "s#$keep/##g; s#$work/##g" | cut -c1-120 | sed 's/|/\\|/g')
  [ "$code" -gt 128 ] && msg="SIGNAL $((code - 128))"
  echo "| $label | $size | $code | ${rss} MB | $wall | ${msg:-ok} |"
}
echo "| input | bytes | exit | peak memory | wall | outcome |"
echo "|---|---|---|---|---|---|"
for f in "$keep"/*; do
  n=$(basename "$f"); s=$(stat -c %s "$f")
  case "$n" in
    *.th|*.pth) row "$n" "$s" "$bin" export --model "$f" -o "$work/x.onnx" ;;
    nan.onnx) row "$n (eval)" "$s" "$bin" eval --model "$f" --limit 100 ;;
    *.onnx) row "$n" "$s" "$bin" taps "$f" ;;
    *.jpg) row "$n" "$s" "$bin" analyze --image-file "$f" --out "$work/j" ;;
  esac
done
img="$work/img.png"; python3 - "$img" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
row "PNG declaring 40000x40000" "$(stat -c %s "$img")" "$bin" analyze --image-file "$img" --out "$work/r1"
mkfifo "$work/fifo.png"
row "FIFO as an image" 0 "$bin" analyze --image-file "$work/fifo.png" --out "$work/r2"
for args in "lines --n-frames 1000000000" "lines --max-order 4294967295" \
  "lines --layout grid:4x4 --freqs 6,6.5,7,7.5,8,8.5,9,9.5,10,10.5,11,11.5,12,12.5,13,13.5" \
  "analyze --noise-n-neighbor-freqs 1000000000000" "analyze --noise-skip-neighbor-freqs 18446744073709551615" \
  "analyze --threshold nan" "analyze --lo nan" "analyze --phases inf,0" "analyze --freqs 6,6" \
  "analyze --permutations 1000000" "eval --limit 0" "stimulus --image 10000" "stimulus --scale 5000"; do
  out=(); [[ $args == analyze* ]] && out=(--out "$work/p")
  # shellcheck disable=SC2086
  row "\`flickertag $args\`" - "$bin" $args "${out[@]}"
done
rm -rf "$work"
