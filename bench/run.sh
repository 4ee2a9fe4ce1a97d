#!/usr/bin/env bash
# make bench: flickertag against the ways users run this analysis today, same machine,
# same 100 CIFAR-10 test images, paper settings (ResNet-32, 240 frames, all conv taps,
# authors preset). Installs torch, onnxruntime and numpy into .venv (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FLICKERTAG_DATA:?set FLICKERTAG_DATA to the data folder (cifar10/, models/)}"
N="${BENCH_IMAGES:-100}"
out="runs/bench"
data="$(cd "$FLICKERTAG_DATA" && pwd)"
rm -rf "$out" && mkdir -p "$out"/{flickertag,torch,ort}
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install --quiet numpy "onnxruntime==1.31.1" torch torch-pruning
bin=./target/release/flickertag
python3 -c "import json,random; r=random.Random(0); print(json.dumps(sorted(r.sample(range(10000), $N))))" > "$out/indices.json"
idx=$(python3 -c "import json; print(','.join(map(str, json.load(open('$out/indices.json')))))")
$bin export --model resnet32 --taps conv -o "$out/resnet32-conv-means.onnx"
cifar="$data/cifar10/test_batch.bin"
ckpt="$data/models/resnet32-cifar10.th"
# The PyTorch reference picks its fastest batch size and memory format once, here
# (untimed), and every timed run uses them.
export BENCH_TORCH_CONFIG="$PWD/$out/torch-config.json"
(cd bench && ../.venv/bin/python reference_torch.py "$ckpt" "$cifar" "../$out/indices.json" "../$out/torch") >/dev/null
frames=$((N * 240))
# Interleaved rounds (A B C D E, B C D E A, ...): medians and spreads, CPU time per frame.
python3 - "$out" "$bin" "$idx" "$frames" "$ckpt" "$cifar" <<'PY'
import json, sys
out, bin, idx, frames, ckpt, cifar = sys.argv[1:]
py = ".venv/bin/python"
cmds = {
    "ONNX Runtime, no taps (limit)": [[bin, "bench", "--model", "resnet32", "--threads", "2", "--taps", "none", "--frames", "8000", "--json"], 8000],
    "ONNX Runtime, 31 conv taps": [[bin, "bench", "--model", "resnet32", "--threads", "2", "--taps", "conv", "--frames", "8000", "--json"], 8000],
    "flickertag analyze (whole command)": [[bin, "analyze", "--model", "resnet32", "--taps", "conv", "--images", idx, "--threads", "2", "--per-image", "--no-stats", "--quiet", "--force", "--out", f"{out}/flickertag"], int(frames)],
    "onnxruntime-python reference": [[py, "bench/reference_ort.py", f"{out}/resnet32-conv-means.onnx", cifar, f"{out}/indices.json", f"{out}/ort"], int(frames)],
    "PyTorch + hooks reference": [[py, "bench/reference_torch.py", ckpt, cifar, f"{out}/indices.json", f"{out}/torch"], int(frames)],
}
json.dump(cmds, open(f"{out}/commands.json", "w"))
PY
python3 bench/interleave.py "$out" "${BENCH_ROUNDS:-3}" | tee "$out/interleaved.txt"
plain=$(python3 -c "import json; d=json.load(open('$out/interleaved.json'))['ONNX Runtime, no taps (limit)']; import statistics; print(d['frames'] / statistics.median(d['wall_s']))")
python3 -c "import json; d=json.load(open('$out/flickertag/summary.json'))['inference']; json.dump({'plain_frames_per_s': $plain, 'period_frames': d['path'].get('period', 240), 'distinct_frames': d['frames_per_image']}, open('$out/limit.json', 'w'))"
python3 -c "import json, statistics; d=json.load(open('$out/interleaved.json'))['flickertag analyze (whole command)']; s=statistics.median(d['wall_s']); json.dump({'seconds': s, 'images': $N, 'images_per_s': $N/s}, open('$out/flickertag/timing.json','w'))"
.venv/bin/python bench/compare.py "$out" | tee "$out/report.txt"
cat "$out/interleaved.txt" >> "$out/report.txt"
# Networks users bring, at 224 x 224 (ResNet-50, ViT-S/16): needs timm, torchvision, onnx.
.venv/bin/pip install --quiet timm torchvision onnx onnxscript pillow
.venv/bin/python bench/byo.py runs/bench/byo "$bin" "$cifar" "${BYO_IMAGES:-4}" | tee -a "$out/report.txt"
# The paradigms (docs/paradigms.md): oddball per class and stream, a contrast sweep.
python3 bench/paradigms.py "$bin" "$out/paradigms" | tee -a "$out/report.txt"
# Class activation maps (docs/cam.md): Score-CAM on the localisation set.
python3 bench/cam.py "$bin" "$out/cam" | tee -a "$out/report.txt"
