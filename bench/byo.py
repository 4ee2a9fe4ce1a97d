"""make bench, part 2: networks users bring, at 224 x 224. ResNet-50 (torchvision) and
ViT-S/16 (timm), random weights (seed 0), exported here with torch.onnx (legacy
exporter, dynamic batch). The same images (CIFAR-10 test images upscaled 7x by pixel
repetition to 224 x 224, written as PNG) go through flickertag (every Conv and Linear
tap) and through PyTorch with forward hooks on every Conv2d and Linear module,
recording per-channel means (conv maps: over H x W; ViT tokens: over the patch
tokens, the class token left out, as flickertag does), 240 frames of the paper's
stimulus, torch.fft.rfft. Prints images/s, the speed-up, flickertag's peak memory with
N and 3N images (per-image spectra off), and the agreement of the spectra.

Then two targets of their own:
- recording costs little: on ResNet-50 with every conv tap, flickertag's frames per
  CPU-second (frames it runs, whole process) against plain ONNX Runtime's on the same
  graph without taps (`flickertag bench --taps none`, same batch), interleaved rounds;
- VGG16-BN at 224 (553 MB of weights): flickertag's peak memory with every conv tap
  against PyTorch with forward hooks on every Conv2d (one image, batch 16).
Usage: byo.py OUT_DIR FLICKERTAG_BIN TEST_BATCH N_IMAGES"""
import json
import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
torch.set_num_threads(2)
torch.manual_seed(0)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FPS, N_FRAMES, F_L, F_R = 120.0, 240, 6.0, 7.5


def models():
    import timm
    import torchvision

    return {
        "resnet50": torchvision.models.resnet50(weights=None).eval(),
        "vit_small_patch16_224": timm.create_model("vit_small_patch16_224", pretrained=False).eval(),
    }


def images(batch_path, n, out):
    raw = np.fromfile(batch_path, dtype=np.uint8).reshape(10000, 3073)[:n, 1:].reshape(n, 3, 32, 32)
    from PIL import Image

    paths = []
    for i, img in enumerate(raw):
        big = img.repeat(7, axis=1).repeat(7, axis=2)  # 224 x 224, pixel repetition
        p = os.path.join(out, f"img{i}.png")
        Image.fromarray(np.transpose(big, (1, 2, 0))).save(p)
        paths.append(p)
    return paths


def frames(png):
    from PIL import Image

    x = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    x = (x - MEAN[:, None, None]) / STD[:, None, None]
    t = np.arange(N_FRAMES) / FPS
    s_l = (0.75 + 0.25 * np.sin(2 * np.pi * F_L * t)).astype(np.float32)
    s_r = (0.75 + 0.25 * np.sin(2 * np.pi * F_R * t)).astype(np.float32)
    out = np.repeat(x[None], N_FRAMES, axis=0)
    w = x.shape[-1]
    out[:, :, :, : w // 2] *= s_l[:, None, None, None]
    out[:, :, :, w // 2 :] *= s_r[:, None, None, None]
    return out


def export(name, model, path):
    import onnx

    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(path)
    m.metadata_props.add(key="flickertag.mean", value=",".join(map(str, MEAN)))
    m.metadata_props.add(key="flickertag.std", value=",".join(map(str, STD)))
    onnx.save(m, path)


def torch_reference(model, pngs, batch=16):
    """Per image, [module][channel, bin] amplitudes of every Conv2d/Linear's per-channel mean."""
    mods = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    rec = {}

    def mean(o):
        if o.dim() == 4:
            return o.mean(dim=(2, 3))
        if o.dim() == 3:  # ViT tokens [N, T, D]: the patch tokens, class token left out
            return o[:, 1:].mean(1)
        return o

    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: rec.setdefault(n, []).append(mean(o))) for n, m in mods]
    t0 = time.time()
    spectra = []
    with torch.inference_mode():
        for p in pngs:
            rec.clear()
            x = torch.from_numpy(frames(p))
            for b in range(0, N_FRAMES, batch):
                model(x[b : b + batch])
            spectra.append({n: (torch.fft.rfft(torch.cat(rec[n]).double(), dim=0).abs() / N_FRAMES).T.numpy()
                            for n, _ in mods})
    secs = time.time() - t0
    for h in hooks:
        h.remove()
    return spectra, secs, [n for n, _ in mods]


def run_flickertag(bin_, onnx_path, pngs, out, per_image=True):
    keep = "--per-image" if per_image else "--no-per-image"
    secs, _, peak_mb = cpu_run([bin_, "analyze", "--model", onnx_path, "--taps", "conv,linear", "--threads", "2",
                                "--no-stats", keep, "--quiet", "--force", "--out", out, "--image-file", *pngs])
    return secs, peak_mb


def cpu_run(argv):
    """(wall s, CPU s of the command and its children, peak RSS MB of the command).

    The peak comes from /usr/bin/time, whose child starts small: a child forked from
    this process (which holds torch and several models) would report this process's
    memory at the fork as its own peak."""
    t = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-v", *map(str, argv)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed: {err}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    return time.perf_counter() - t, ru.ru_utime + ru.ru_stime, peak_kb / 1024


def recording_cost(bin_, onnx_path, pngs, out, rounds=3):
    """flickertag analyze (every conv tap) against plain ONNX Runtime (no taps) on the
    same frames, interleaved rounds; frames per CPU-second, medians and spreads.

    Two figures: the whole process (start-up included: flickertag also probes the
    graph, decodes and resizes the images, computes and writes the spectra) with
    `pngs`, and the marginal cost of a frame, from runs with `pngs` and with twice as
    many images (start-up cancels out): what recording costs per frame."""
    more = pngs + pngs  # the same images twice: twice the frames, the same per-frame work
    # Both at the batch flickertag picks for ResNet-50 at 224 (its activations within
    # 512 MB: Model::batch_for).
    batch = 5

    def analyze(images):
        return [bin_, "analyze", "--model", onnx_path, "--taps", "conv", "--threads", "2", "--no-stats",
                "--batch", str(batch), "--no-per-image", "--quiet", "--force", "--out",
                os.path.join(out, "resnet50-cpu"), "--image-file", *images]

    cpu_run(analyze(pngs))  # once untimed: the frames it runs
    s = json.load(open(os.path.join(out, "resnet50-cpu", "summary.json")))
    frames = s["inference"]["frames_per_image"] * len(pngs)

    def plain(n):
        return [bin_, "bench", "--model", onnx_path, "--taps", "none", "--frames", str(n), "--batch", str(batch),
                "--threads", "2", "--json"]

    runs = {("flickertag", 1): analyze(pngs), ("flickertag", 2): analyze(more),
            ("ort", 1): plain(frames), ("ort", 2): plain(2 * frames)}
    cpu = {k: [] for k in runs}
    loads = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        keys = list(runs)
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            cpu[k].append(cpu_run(runs[k])[1])
    names = {"flickertag": "flickertag analyze, 53 conv taps", "ort": "ONNX Runtime, no taps"}
    whole = {t: [frames / c for c in cpu[(t, 1)]] for t in names}
    marginal = {t: [frames / (b - a) for a, b in zip(cpu[(t, 1)], cpu[(t, 2)])] for t in names}
    med = lambda v: float(np.median(v))
    print(f"resnet50 recording cost: {frames} frames ({len(pngs)} images x {frames // len(pngs)} distinct frames) "
          f"and twice that, batch {batch}, {rounds} interleaved rounds, load average "
          f"{', '.join(f'{x:.2f}' for x in loads)}")
    result = {"frames": frames, "batch": batch, "load_average": loads, "cpu_s": {f"{t}/{k}": v for (t, k), v in cpu.items()}}
    for label, d in [("whole process", whole), ("per frame, start-up cancelled", marginal)]:
        for t, name in names.items():
            print(f"  {label:<30} {name:<34} {med(d[t]):.3f} frames per CPU-s (min {min(d[t]):.3f}, max {max(d[t]):.3f})")
        ratio = med(d["flickertag"]) / med(d["ort"])
        print(f"  {label:<30} flickertag reaches {100 * ratio:.1f} % of plain ONNX Runtime's frames per CPU-second "
              "(target: 90 %)")
        result[label] = {"frames_per_cpu_s": d, "ratio": ratio}
    return result


def vgg_memory(bin_, png, out):
    """Peak memory of flickertag (every conv tap, one image) and of PyTorch with forward
    hooks on every Conv2d (one image, all 240 frames in batches of 16), VGG16-BN at 224;
    and flickertag's peaks in `taps` and `analyze` (one image, default taps) against the
    bound of about twice the model file plus the 512 MB activation budget, on VGG16-BN
    (553 MB of weights) and Swin-T (110 MB; 3,632 tensors, the tap probe's hardest)."""
    import torchvision

    path = os.path.join(out, "vgg16_bn.onnx")
    export("vgg16_bn", torchvision.models.vgg16_bn(weights=None).eval(), path)
    _, _, ft = cpu_run([bin_, "analyze", "--model", path, "--taps", "conv", "--threads", "2",
                        "--no-stats", "--quiet", "--force", "--out", os.path.join(out, "vgg-flickertag"),
                        "--image-file", png])
    code = (
        "import sys, torch, torchvision; sys.path.insert(0, %r); import byo; torch.manual_seed(0); "
        "m = torchvision.models.vgg16_bn(weights=None).eval(); byo.torch_reference(m, [%r], batch=16)"
    ) % (os.path.dirname(os.path.abspath(__file__)), png)
    _, _, pt = cpu_run([sys.executable, "-c", code])
    print(f"vgg16_bn peak memory, one image, every conv tap: flickertag {ft:.0f} MB, PyTorch hooks {pt:.0f} MB "
          f"(target: flickertag within 2,048 MB)")
    report = {"flickertag_peak_mb": ft, "torch_hooks_peak_mb": pt}
    swin = os.path.join(out, "swin_t.onnx")
    export("swin_t", torchvision.models.swin_t(weights=None).eval(), swin)
    for name, model in [("vgg16_bn", path), ("swin_t", swin)]:
        file_mb = os.path.getsize(model) / 2**20
        bound = 2 * file_mb + 512
        _, _, taps = cpu_run([bin_, "taps", model])
        _, _, analyze = cpu_run([bin_, "analyze", "--model", model, "--threads", "2", "--no-stats", "--quiet",
                                 "--force", "--out", os.path.join(out, f"{name}-bound"), "--image-file", png])
        print(f"{name} ({file_mb:.0f} MB file) peak memory: taps {taps:.0f} MB, analyze one image {analyze:.0f} MB "
              f"(bound: 2 x file + 512 = {bound:.0f} MB)")
        report[name] = {"file_mb": file_mb, "taps_peak_mb": taps, "analyze_peak_mb": analyze, "bound_mb": bound}
    return report


def main(out, bin_, batch_path, n):
    n = int(n)
    os.makedirs(out, exist_ok=True)
    pngs = images(batch_path, 3 * n, out)
    report = {}
    for name, model in models().items():
        path = os.path.join(out, f"{name}.onnx")
        export(name, model, path)
        fdir = os.path.join(out, f"{name}-flickertag")
        secs, _ = run_flickertag(bin_, path, pngs[:n], fdir)
        # Memory with N and 3N images (per-image spectra off: they grow by design).
        secs_np, peak = run_flickertag(bin_, path, pngs[:n], os.path.join(out, f"{name}-flickertag-mem"), per_image=False)
        _, peak3 = run_flickertag(bin_, path, pngs, os.path.join(out, f"{name}-flickertag-mem-3n"), per_image=False)
        ref, tsecs, names = torch_reference(model, pngs[:n])
        summary = json.load(open(os.path.join(fdir, "summary.json")))
        amp = np.load(os.path.join(fdir, "spectra.npy"))  # [image, row, bin]
        taps = [t["name"] for t in summary["taps"]]
        rows = np.concatenate([[0], np.cumsum([t["shape"][0] for t in summary["taps"]])])
        worst, compared = 0.0, 0
        for i in range(n):
            for j, t in enumerate(taps):
                if t not in ref[i]:
                    continue
                a, b = amp[i, rows[j] : rows[j + 1]], ref[i][t]
                scale = np.maximum(b.max(axis=1, keepdims=True), 1e-3 * b.max())
                worst = max(worst, float(np.max(np.abs(a - b) / scale)))
                compared += 1
        missing = sorted(set(names) - set(taps))
        report[name] = {
            "images": n,
            "flickertag_s": secs,
            "flickertag_images_per_s": n / secs,
            "flickertag_analysis_s": summary["seconds"],
            "torch_s": tsecs,
            "torch_images_per_s": n / tsecs,
            "speedup": tsecs / secs,
            "speedup_analysis": tsecs / summary["seconds"],
            "flickertag_no_per_image_s": secs_np,
            "speedup_no_per_image": tsecs / secs_np,
            "peak_mb": peak,
            "peak_mb_3n": peak3,
            "taps": len(taps),
            "hooked_modules": len(names),
            "modules_not_tapped": missing,
            "worst_rel_diff": worst,
            "compared": compared,
        }
        print(f"{name}: flickertag {n / secs:.3f} images/s ({secs:.1f} s whole command, {summary['seconds']:.1f} s "
              f"analysis; peak {peak:.0f} MB, {3 * n} images: {peak3:.0f} MB), PyTorch hooks {n / tsecs:.3f} "
              f"images/s ({tsecs:.1f} s): {tsecs / secs:.2f}x whole command, {tsecs / secs_np:.2f}x without writing "
              f"per-image spectra ({secs_np:.1f} s), {tsecs / summary['seconds']:.2f}x analysis; "
              f"{len(taps)} taps, {len(names)} hooked modules, spectra within {worst:.1e} of each channel's "
              f"largest amplitude; not tapped: {missing}")
    report["recording_cost"] = recording_cost(bin_, os.path.join(out, "resnet50.onnx"), pngs[:n], out)
    report["vgg16_bn_memory"] = vgg_memory(bin_, pngs[0], out)
    json.dump(report, open(os.path.join(out, "byo.json"), "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
