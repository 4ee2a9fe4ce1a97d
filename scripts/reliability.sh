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

# Inputs of the second attack report (issue 22): sizes that blew up memory, data that
# was lost or mixed, outputs left truncated.
# Pillow (for the GIF) is in the Python environment `make test` makes.
py=python3; [ -x .venv/bin/python ] && py=.venv/bin/python
"$py" - "$work" <<'PY'
import os, sys, zipfile
w = sys.argv[1]
# A 50 KB GIF of 8192 x 8192 pixels (the largest image read), written by Pillow.
from PIL import Image
im = Image.new("P", (8192, 8192), 0)
im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
im.save(os.path.join(w, "big.gif"))
# A 16 MB zip checkpoint whose pickle nests 8 million lists.
with zipfile.ZipFile(os.path.join(w, "nested.pth"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", b"\x80\x02]" + b"]a" * 8_000_000 + b".")
# A 1.4 MB ONNX chain of 40,000 ReLUs (protobuf written by hand: no onnx package needed).
def key(f, t): return bytes([f << 3 | t])
def varint(n):
    b = bytearray()
    while True:
        b.append((n & 127) | (128 if n > 127 else 0)); n >>= 7
        if not n: return bytes(b)
def ld(f, payload): return key(f, 2) + varint(len(payload)) + payload
def s(f, text): return ld(f, text.encode())
def vi(name, dims):
    shape = b"".join(ld(1, s(2, d) if isinstance(d, str) else key(1, 0) + varint(d)) for d in dims)
    return s(1, name) + ld(2, ld(1, key(1, 0) + varint(1) + ld(2, shape)))
n = 40000
nodes = b"".join(ld(1, s(1, "input" if i == 0 else f"t{i}") + s(2, f"t{i + 1}") + s(3, f"relu{i}") + s(4, "Relu"))
                 for i in range(n))
graph = nodes + s(2, "chain") + ld(11, vi("input", ["N", 3, 32, 32])) + ld(12, s(1, f"t{n}"))
model = key(1, 0) + varint(8) + ld(7, graph) + ld(8, s(1, "") + key(2, 0) + varint(17))
open(os.path.join(w, "chain.onnx"), "wb").write(model)
PY
row "GIF of 8192x8192 pixels, \`--resize 32\`" "$(stat -c %s "$work/big.gif")" "$bin" analyze --quiet --image-file "$work/big.gif" --resize 32 --out "$work/g"
row "zip checkpoint of 8M nested lists" "$(stat -c %s "$work/nested.pth")" "$bin" export --model "$work/nested.pth" -o "$work/n.onnx"
row "ONNX chain of 40,000 ReLUs (\`taps\`)" "$(stat -c %s "$work/chain.onnx")" "$bin" taps "$work/chain.onnx"
# --force on a home-like folder that holds a summary.json: refused, nothing deleted.
home="$work/home"; mkdir -p "$home/.ssh" "$home/data"; echo secret > "$home/.ssh/id_ed25519"; echo x > "$home/thesis.tex"; echo '{}' > "$home/summary.json"
row "\`analyze --out HOME --force\` (.ssh/, thesis.tex, summary.json)" - env HOME="$work" "$bin" analyze --quiet --out "$home" --force
[ -f "$home/.ssh/id_ed25519" ] && [ -f "$home/thesis.tex" ] || echo "| DATA LOSS: the home-like folder was changed | | | | | |"
# Shards of two networks at the same path (one weight byte changed between them).
"$bin" export --model resnet32 -o "$work/m.onnx" >/dev/null 2>&1
for i in 0 1; do env HOME="$work" "$bin" analyze --quiet --model "$work/m.onnx" --shard $i/2 --out "$work/s$i" >/dev/null 2>&1; done
python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=1; open(p,'wb').write(b)" "$work/m.onnx"
env HOME="$work" "$bin" analyze --quiet --model "$work/m.onnx" --shard 1/2 --out "$work/x1" >/dev/null 2>&1
row "shards of another network at the same path (\`merge\`)" - "$bin" merge "$work/s0" "$work/x1" --out "$work/merged"
# A shard whose stimulus was edited by hand, and one whose array header nests braces
# (its checksum forged to match, so that the NPY reader's own bound is what refuses it).
cp -r "$work/s0" "$work/e0"; sed -i 's/7.5/8.5/' "$work/e0/partial.json"
row "partial run with its stimulus edited (\`merge\`)" - "$bin" merge "$work/e0" "$work/s1" --out "$work/merged"
cp -r "$work/s0" "$work/b0"
python3 - "$work/b0" <<'PY'
import hashlib, json, os, struct, sys
d = sys.argv[1]
h = b"{" * 16 + b" " * 101 + b"\n"
b = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h
open(os.path.join(d, "state/sum_amp.npy"), "wb").write(b)
c = os.path.join(d, "checksums.json")
sums = json.load(open(c))
sums["state/sum_amp.npy"] = hashlib.sha256(b).hexdigest()
json.dump(sums, open(c, "w"))
PY
row "128-byte NPY nesting 16 braces, checksum forged (\`merge\`)" 128 "$bin" merge "$work/b0" "$work/s1" --out "$work/merged"
row "\`flickertag bench --batch 0\`" - "$bin" bench --batch 0
# A full disk, where a tmpfs can be mounted (root): no truncated file under its final name.
if mkdir -p "$work/full" && mount -t tmpfs -o size=200k tmpfs "$work/full" 2>/dev/null; then
  row "\`stimulus -o DIR\` on a full 200 KB disk" - "$bin" stimulus --image-file crates/flickertag-cli/tests/zoo/image.png -o "$work/full/stim"
  empty=$(find "$work/full" -type f -size 0 | wc -l); echo "| (files left empty on the full disk: $empty) | | | | | |"
  row "\`export\` on a full 200 KB disk" - "$bin" export --model resnet32 -o "$work/full/m.onnx"
  umount "$work/full"
else
  echo "| full disk | - | - | - | - | not run: mounting a small tmpfs needs root |"
fi
rm -rf "$work"
