"""Checks that flickertag and the references agree and prints the throughput table.
Usage: compare.py RUN_DIR  (with flickertag/, torch/, ort/ subfolders and limit.json)"""
import json, sys, warnings
import numpy as np

warnings.filterwarnings("ignore", "All-NaN slice")  # channels are NaN-padded to the widest tap

run = sys.argv[1]
res = {k: {"amp": np.load(f"{run}/{k}/spectra.npy"), "scores": np.load(f"{run}/{k}/scores.npy")} for k in ["flickertag", "torch", "ort"]}
timing = {k: json.load(open(f"{run}/{k}/timing.json")) for k in res}
# flickertag writes one row per filter ([image, row, bin], each tap's channels in turn);
# the references pad channels to the widest tap ([image, tap, channel, bin]).
counts = [t["shape"][0] for t in json.load(open(f"{run}/flickertag/summary.json"))["taps"]]
for k in ["torch", "ort"]:
    amp, sc = res[k]["amp"], res[k]["scores"]
    res[k]["amp"] = np.concatenate([amp[:, t, :c] for t, c in enumerate(counts)], axis=1)
    res[k]["scores"] = np.concatenate([sc[:, t, :c] for t, c in enumerate(counts)], axis=1)
limit = json.load(open(f"{run}/limit.json"))
ok = True
ref = res["flickertag"]
grid = np.arange(ref["amp"].shape[-1]) % 3 == 0  # the 1.5 Hz response grid (bins multiple of 3)
for k in ["torch", "ort"]:
    a, b = ref["amp"], res[k]["amp"]
    # Each filter's largest line on the grid, DC included (DC is the k = 0 line); the
    # non-DC figure is printed too, for filters whose modulation is tiny next to DC.
    peak = np.nanmax(a[..., grid], axis=-1, keepdims=True)
    worst = np.nanmax(np.abs(a - b)[..., grid] / peak)
    peak_ac = np.nanmax(a[..., 1:], axis=-1, keepdims=True)
    worst_ac = np.nanmax(np.abs(a - b)[..., grid][..., 1:] / peak_ac)
    d = np.abs(ref["scores"] - res[k]["scores"])
    valid = ~np.isnan(d)
    per_filter = np.nanmax(np.where(valid, d, np.nan), axis=0)  # worst over images, per filter
    pf = per_filter[~np.isnan(per_filter)]
    frac = np.mean(d[valid] <= 0.01)
    frac_f = np.mean(pf <= 0.01)
    print(f"flickertag vs {k}: spectra on the grid: worst |diff| = {worst:.2e} of the filter's largest line "
          f"({'OK' if worst <= 1e-4 else 'FAIL'} at 1e-4); against the largest non-DC line {worst_ac:.2e}")
    print(f"  authors scores within 0.01 dB: {100 * frac:.2f} % of (image, filter) pairs, {100 * frac_f:.2f} % of filters in every image; "
          f"largest difference {np.nanmax(d):.3f} dB; pairs over 0.01 dB: {int((d[valid] > 0.01).sum())}")
    ok &= worst <= 1e-4 and frac >= 0.95
print()
print(f"{'implementation':<28} {'images/s':>9} {'vs PyTorch':>11}")
for k, name in [("torch", "PyTorch + hooks (reference)"), ("ort", "onnxruntime-python"), ("flickertag", "flickertag (whole command)")]:
    ips = timing[k]["images_per_s"]
    print(f"{name:<28} {ips:>9.2f} {ips / timing['torch']['images_per_s']:>10.2f}x")
summary = json.load(open(f"{run}/flickertag/summary.json"))
ips_core = timing["flickertag"]["images"] / summary["seconds"]
print(f"{'flickertag (analysis only)':<28} {ips_core:>9.2f} {ips_core / timing['torch']['images_per_s']:>10.2f}x   (without start-up and writing 300 MB of per-image spectra)")
plain = limit["plain_frames_per_s"]
print(f"frame-throughput limit: ONNX Runtime runs {plain:.0f} frames/s without taps")
for label, frames in [("one period", limit["period_frames"]), ("distinct frames only", limit["distinct_frames"])]:
    lim = plain / frames
    print(f"  {label:<21} {frames:>3} frames per image: limit {lim:.2f} images/s; flickertag reaches "
          f"{100 * timing['flickertag']['images_per_s'] / lim:.0f} % (whole command), {100 * ips_core / lim:.0f} % (analysis only)")
sys.exit(0 if ok else 1)
