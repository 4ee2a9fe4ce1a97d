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
.venv/bin/pip install --quiet numpy "onnxruntime==1.31.1" torch
bin=./target/release/flickertag
python3 -c "import json,random; r=random.Random(0); print(json.dumps(sorted(r.sample(range(10000), $N))))" > "$out/indices.json"
idx=$(python3 -c "import json; print(','.join(map(str, json.load(open('$out/indices.json')))))")
plain=$($bin bench --model resnet32 --threads 2 --taps none --frames 8000 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['frames_per_s'])")
echo "ONNX Runtime plain inference: $plain frames/s"
start=$(date +%s.%N)
$bin analyze --model resnet32 --taps conv --images "$idx" --threads 2 --per-image --no-stats --quiet --out "$out/flickertag"
end=$(date +%s.%N)
python3 -c "import json; d=json.load(open('$out/flickertag/summary.json'))['inference']; json.dump({'plain_frames_per_s': $plain, 'period_frames': d['path'].get('period', 240), 'distinct_frames': d['frames_per_image']}, open('$out/limit.json', 'w'))"
python3 -c "import json; s=$end-$start; json.dump({'seconds': s, 'images': $N, 'images_per_s': $N/s}, open('$out/flickertag/timing.json','w')); print(f'flickertag: $N images in {s:.1f} s = {$N/s:.2f} images/s')"
$bin export --model resnet32 --taps conv -o "$out/resnet32-conv-means.onnx"
cifar="$data/cifar10/test_batch.bin"
(cd bench && ../.venv/bin/python reference_ort.py "../$out/resnet32-conv-means.onnx" "$cifar" "../$out/indices.json" "../$out/ort")
(cd bench && ../.venv/bin/python reference_torch.py "$data/models/resnet32-cifar10.th" "$cifar" "../$out/indices.json" "../$out/torch")
.venv/bin/python bench/compare.py "$out" | tee "$out/report.txt"
# Networks users bring, at 224 x 224 (ResNet-50, ViT-S/16): needs timm, torchvision, onnx.
.venv/bin/pip install --quiet timm torchvision onnx onnxscript pillow
.venv/bin/python bench/byo.py runs/bench/byo "$bin" "$cifar" "${BYO_IMAGES:-4}" | tee -a "$out/report.txt"
