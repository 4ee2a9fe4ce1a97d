#!/usr/bin/env python3
"""Reruns the commands behind the statistics table of docs/statistics.md (ResNet-32, conv taps) and
prints every figure with the command that produced it. About 3 minutes on 2 cores (2 of them for
the 20 control networks).
Usage: FLICKERTAG_DATA=../shared/data python3 scripts/readme-statistics.py   (after make build)
Standard library only: it reads the run folders flickertag writes."""
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "flickertag")
os.environ.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, ".cache/onnxruntime/1.31.1/libonnxruntime.so"))
if "FLICKERTAG_DATA" not in os.environ:
    sys.exit("set FLICKERTAG_DATA")


def analyze(out, *args):
    cmd = ["analyze", "--model", "resnet32", "--taps", "conv", "--seed", "1", "--threads", "2", "--quiet",
           "--force", "--no-per-image", "--out", out, *args]
    subprocess.run([BIN, *cmd], check=True)
    shown = [a for a in cmd if a not in (out, "--out")]
    print(f"$ flickertag {' '.join(shown)} --out DIR")
    summary = json.load(open(os.path.join(out, "summary.json")))
    rows = list(csv.DictReader(open(os.path.join(out, "filters.csv"))))
    return summary, rows


def quantile(v, p):
    v = sorted(v)
    return v[round((len(v) - 1) * p)]


def main():
    tmp = tempfile.mkdtemp()
    s, rows = analyze(os.path.join(tmp, "r100"), "--n-images", "100", "--control", "permuted", "--region-swap")
    stem = s["layers"][0]["tap"]
    post = [r for r in rows if r["tap"] != stem]
    means = [float(r["mean_score"]) for r in post]
    sds = [float(r["sd_score"]) for r in post]
    imp = sum(r["important"] == "true" for r in rows)
    st = s["stats"]
    print(f"- filters: {len(rows)} in {len(s['layers'])} conv layers; important (mean authors score > "
          f"{s['threshold']} dB): {imp}")
    print(f"- split-half stability of that set (Jaccard pooled over the network, {st['n_images']} images, "
          f"{s['config']['stats']['splits'] if 'config' in s else 50} splits): "
          f"{st['operating_jaccard']:.3f} ± {st['operating_jaccard_sd']:.3f}")
    print(f"- scores after the stem: {min(means):.3f} to {max(means):.3f} dB; 90 % of filters within "
          f"{quantile(means, 0.05):.3f}-{quantile(means, 0.95):.3f} dB; SD of the filter means "
          f"{statistics.stdev(means):.3f} dB; median image-to-image SD of a filter {statistics.median(sds):.3f} dB")
    resp = lambda r, k: r[k] == "true"
    for label, pick in [("stem conv", [r for r in rows if r["tap"] == stem]), ("after the stem", post)]:
        n = len(pick)
        f = sum(resp(r, "resp_f1") or resp(r, "resp_f2") for r in pick)
        h = sum(resp(r, "resp_harm1") or resp(r, "resp_harm2") for r in pick)
        i = sum(resp(r, "resp_intermod") for r in pick)
        print(f"- responses above the float32 rounding floor, {label} ({n} filters): a fundamental {f}, "
              f"a harmonic {h}, intermodulation {i}")
    ctl = list(csv.DictReader(open(os.path.join(tmp, "r100", "control.csv"))))
    higher = sum(float(r["cliffs_delta"]) < 0 for r in ctl)
    deltas = [float(r["cliffs_delta"]) for r in ctl]
    ps = [float(r["p_value"]) for r in ctl]
    ti = sum(int(r["trained_important"]) for r in ctl)
    ci = sum(int(r["control_important"]) for r in ctl)
    post_ctl = ctl[1:]
    mean_share = lambda k: statistics.mean(float(r[k]) for r in post_ctl)
    print(f"- against a permuted control (each weight tensor shuffled, seed 0): the control scores higher in "
          f"{higher} of {len(ctl)} layers (Cliff's delta {min(deltas):.2f} to {max(deltas):.2f}, Mann-Whitney p "
          f"{min(ps):.1e} to {max(ps):.1e}); important filters {ti} trained, {ci} control; share of filters "
          f"after the stem responding at intermodulation: {mean_share('trained_intermod'):.2f} trained, "
          f"{mean_share('control_intermod'):.2f} control (mean over layers)")
    cj = json.load(open(os.path.join(tmp, "r100", "control.json")))
    fz = lambda k: statistics.mean(r[k] for r in cj["calibration"])
    print(f"- the control's operating point ({cj['calibrated_on']}): ReLU units that never switch, mean over "
          f"{len(cj['calibration'])} ReLUs: trained {fz('trained'):.3f}, control under the trained statistics "
          f"{fz('control_stale'):.3f}, calibrated control (analysed) {fz('control'):.3f}")
    for r in cj["networks"]:
        if r["level"] == "(network)":
            print(f"- whole network against {r['n_controls']} permuted controls (seeds 0-{r['n_controls'] - 1}), "
                  f"{r['statistic']}: trained {r['trained']:.4g}, controls {r['control_mean']:.4g} "
                  f"[{r['control_min']:.4g}, {r['control_max']:.4g}], percentile {r['percentile']:.1f}, "
                  f"Monte Carlo p {r['p_value']:.3f}")
    layers = [r for r in cj["networks"] if r["level"] != "(network)" and r["statistic"] == "integration"]
    above = sum(r["percentile"] == 100 for r in layers)
    print(f"- per layer, integration index above every control in {above} of {len(layers)} layers")
    sw = list(csv.DictReader(open(os.path.join(tmp, "r100", "region_swap.csv"))))
    reg = sum(r["follows_region"] == "true" for r in sw)
    frq = sum(r["follows_frequency"] == "true" for r in sw)
    print(f"- region swap (frequencies exchanged between the halves, paired t across images, BH q = 0.05): "
          f"{reg} of {len(sw)} filters follow the region, {frq} the frequency")
    shift = [float(r["selectivity_swapped"]) - float(r["selectivity"]) for r in sw]
    print(f"- selectivity (region terms) with the frequencies swapped minus without, over the filters: mean "
          f"{statistics.mean(shift):+.4f}, mean |shift| {statistics.mean(abs(x) for x in shift):.4f}, largest "
          f"{max(abs(x) for x in shift):.4f}")
    cv = list(csv.DictReader(open(os.path.join(tmp, "r100", "crossval.csv"))))

    def spread(col):
        v = sorted(float(r[col]) for r in cv if r[col] != "")
        lo, hi = v[int(0.025 * (len(v) - 1))], v[int(round(0.975 * (len(v) - 1)))]
        return f"{statistics.mean(v):.3f} [{lo:.3f}, {hi:.3f}]"

    print(f"- cross-validated selection ({len(cv)} random halves of the 100 images; threshold chosen on half A as the "
          f"most stable within A, checked on B; mean [2.5 %, 97.5 %] over splits): chosen threshold "
          f"{spread('threshold')} dB, important on A {spread('count_a')}, on B {spread('count_b')}; "
          f"chance-corrected Jaccard of A's and B's sets {spread('kappa')} (at the operating threshold "
          f"{spread('kappa_operating')}); Spearman of the filter means of A and B {spread('spearman')}")
    stem_pc = sum(r["phase_consistent"] == "true" for r in rows if r["tap"] == stem)
    print(f"- phase-consistent (T², BH q = 0.05) in the stem conv: {stem_pc} of "
          f"{sum(r['tap'] == stem for r in rows)}")
    counts = []
    for n in (5, 10, 20):
        sn, rn = analyze(os.path.join(tmp, f"r{n}"), "--n-images", str(n))
        counts.append((n, sum(r["phase_consistent"] == "true" for r in rn)))
    counts.append((100, sum(r["phase_consistent"] == "true" for r in rows)))
    print("- phase-consistent filters by number of images: " + ", ".join(f"n = {n}: {c}" for n, c in counts))
    analyze(os.path.join(tmp, "noise"), "--n-images", "20", "--no-stats", "--noise-sigma", "0.01,0.1,1")
    ns = list(csv.DictReader(open(os.path.join(tmp, "noise", "noise_sweep.csv"))))
    for sigma in ("0.01", "0.1", "1"):
        at = lambda line, stem_only: [float(r["detection_rate"]) for r in ns if r["sigma"] == sigma
                                      and r["line"] == line and (r["tap"] == stem) == stem_only]
        null = [v for line in ("2f1", "2f2", "f2-f1", "f1+f2") for v in at(line, True)]
        print(f"- input noise sigma {sigma}: F-test detection rate (alpha 0.05), mean over the layers after the stem: "
              f"f1 {statistics.mean(at('f1', False)):.2f}, f2 {statistics.mean(at('f2', False)):.2f}, "
              f"f2-f1 {statistics.mean(at('f2-f1', False)):.2f}, f1+f2 {statistics.mean(at('f1+f2', False)):.2f}; "
              f"stem conv at the lines it lacks (2f1, 2f2, f2-f1, f1+f2): {statistics.mean(null):.3f}")
    sweep = [r for r in csv.DictReader(open(os.path.join(tmp, "r100", "sweep.csv")))
             if r["criterion"] == "threshold" and r["tap"] == "(network)"]
    print("- threshold sweep (quantiles of the post-stem scores and the operating threshold), whole network:")
    for r in sweep:
        print(f"  {float(r['value']):.3f} dB: {r['count']} important, Jaccard {float(r['jaccard_mean']):.3f}"
              f" ± {float(r['jaccard_sd']):.3f}")
    out = os.path.join(tmp, "boot")
    analyze(out, "--n-images", "20", "--bootstrap", "500", "--no-stats")
    boot = {(r["tap"], r["quantity"]): r for r in csv.DictReader(open(os.path.join(out, "bootstrap.csv")))
            if r["channel"] == ""}
    for tap in ("layer3.4.conv2", stem):
        r = boot[(tap, "integration")]
        print(f"- integration in {tap} (20 images, 500 resamples, studentized 95 % interval): "
              f"{float(r['mean']):.3g} [{float(r['ci_low']):.3g}, {float(r['ci_high']):.3g}]")


if __name__ == "__main__":
    main()
