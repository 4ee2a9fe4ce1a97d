"""The paradigms beyond part-based flicker from Python, against the CLI and against what
flickertag did not write (PIL-written image folders, numpy arithmetic on the tables)."""

import io
import json
import math
import os
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import flickertag

BIN = os.environ.get("FLICKERTAG_BIN", os.path.join(os.path.dirname(__file__), "../../../target/release/flickertag"))


def class_folder(root, n_classes=3, per_class=6):
    """An ImageFolder tree of seeded 32 x 32 PNGs: class k has its own mean colour."""
    rng = np.random.default_rng(0)
    for k in range(n_classes):
        d = os.path.join(root, f"class{k}")
        os.makedirs(d)
        colour = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]][k % 3])
        for i in range(per_class):
            px = np.clip(colour + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(os.path.join(d, f"{i}.png"))
    return root


def test_oddball_from_python_matches_the_cli_run_folder(tmp_path):
    folder = class_folder(str(tmp_path / "images"))
    opts = dict(image_folder=folder, streams=2, taps="conv", threads=1)
    o = flickertag.oddball("resnet32", progress=False, out=str(tmp_path / "py"), **opts)
    assert list(dict.fromkeys(o.filters["class"])) == ["class0", "class1", "class2", "(none)"]
    # One row per conv filter of ResNet-32 (1136) and class.
    assert len(o.filters) == 1136 * 4
    sel = o.selectivity
    assert sel.shape == (1136, 4) and list(sel.columns)[-1] == "(none)"
    assert sel.index[0] == ("conv1", 0)
    # The layer counts are the filter table's, recomputed here.
    z = o.filters.assign(sel=o.filters["z"] > 2.32).groupby(["tap", "class"], sort=False)["sel"].sum()
    got = o.layers.set_index(["tap", "class"])["selective"]
    assert (z.loc[got.index].values == got.values).all()
    # The CLI with the same options writes the same tables.
    cli = tmp_path / "cli"
    subprocess.run([BIN, "oddball", "--model", "resnet32", "--image-folder", folder, "--streams", "2", "--taps",
                    "conv", "--threads", "1", "--quiet", "--out", str(cli)], check=True)
    for name in ("oddball.csv", "oddball_layers.csv", "oddball_harmonics.csv"):
        assert (cli / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name
    assert (tmp_path / "py" / "report.html").is_file()
    assert (tmp_path / "py" / "plots" / "oddball_map.png").is_file()


def test_oddball_options_are_checked_and_named():
    with pytest.raises(flickertag.FlickertagError, match="invalid base_freq"):
        flickertag.oddball("resnet32", base_freq=7.0, progress=False)
    with pytest.raises(flickertag.FlickertagError, match="unknown field `stream`"):
        flickertag.oddball("resnet32", stream=3, progress=False)


def test_colour_modulation_and_contrast_sweep_from_python():
    # Isoluminant: the stem conv is linear, so its response at the tags under a red-green
    # tag follows from its weights; here the sweep's amplitudes must scale with depth.
    a = flickertag.analyze("resnet32", taps="conv", modulation="red-green", contrast_sweep=[0.5, 1.0],
                           stats=False, progress=False)
    c = a.contrast_response
    assert set(c["depth"]) == {0.5, 1.0}
    stem = c[c["tap"] == "conv1"].pivot_table(index=["channel", "region"], columns="depth", values="amplitude")
    np.testing.assert_allclose(stem[0.5], 0.5 * stem[1.0], rtol=1e-4)
    assert a.summary["stimulus"]["config"]["modulation"] == "red-green"
    with pytest.raises(flickertag.FlickertagError, match="modulation"):
        flickertag.analyze("resnet32", modulation="green", progress=False)


def test_harmonic_sum_from_python_needs_noise_and_matches_its_own_definition():
    with pytest.raises(flickertag.FlickertagError, match="harmonic_sum"):
        flickertag.analyze("resnet32", harmonic_sum=True, progress=False)
    a = flickertag.analyze("resnet32", harmonic_sum=True, noise_sigma=1.0, progress=False)
    hs, hh = a.harmonic_sum, a.harmonic_sum_harmonics
    assert len(hs) == 2 * len(a.filters)
    assert (hs["responds"] == (hs["p_holm"] <= 0.05)).all()
    # Per tap and region, the number of harmonics summed is the number selected.
    selected = hh[hh["selected"]].groupby(["tap", "region"]).size()
    used = hs.groupby(["tap", "region"])["harmonics"].first()
    assert (used.reindex(selected.index) == selected).all()


TEMPORAL = os.path.join(os.path.dirname(__file__), "..", "..", "flickertag-cli", "tests", "zoo", "temporal")


def test_a_recurrent_model_runs_in_time_from_python_and_agrees_with_pytorch():
    # The trained recurrent network of scripts/make-temporal-models.py, with the warm-up
    # its PyTorch oracle used: the spectra of the hooked per-channel means.
    index = json.load(open(os.path.join(TEMPORAL, "temporal.json")))["recurrent"]
    image = os.path.join(TEMPORAL, "..", "image.png")
    t = flickertag.taps(os.path.join(TEMPORAL, "recurrent.legacy.onnx"))
    assert t.attrs["time"]["states"][0]["input"] == "h" and set(index["checks"]) <= set(t["name"])
    clip = flickertag.taps(os.path.join(TEMPORAL, "clip3d.legacy.onnx"))
    assert clip.attrs["time"] == {"kind": "clip", "length": 8}
    assert clip[clip["name"] == "conv2"].iloc[0]["layout"] == "clip(t=2)"
    a = flickertag.analyze(os.path.join(TEMPORAL, "recurrent.legacy.onnx"), [image], tap=index["checks"],
                           warmup=index["warmup"], stats=False, progress=False)
    assert a.summary["model"]["time"]["kind"] == "recurrent"
    assert a.summary["model"]["time"]["states"][0]["input"] == "h"
    want = np.load(os.path.join(TEMPORAL, "recurrent.npy"))
    for tap in index["checks"]:
        start, c = index["spectra"][tap]
        w, g = want[start:start + c], a.mean_spectra[a.rows(tap)]
        scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-2)
        assert np.all(np.abs(g - w) <= 1e-4 * scale), tap
    # A warm-up is for a model with a state only; the message names the parameter.
    with pytest.raises(flickertag.FlickertagError, match="warmup"):
        flickertag.analyze(os.path.join(TEMPORAL, "clip3d.legacy.onnx"), [image], warmup=5, stats=False,
                           progress=False)


def _fpvs_z(amp, h, grid):
    """z at bin h of amp by the FPVS rule as docs/statistics.md states it (numpy)."""
    nb = len(amp)
    noise = [h + j for d in range(2, 11) for j in (-d, d) if 0 < h + j < nb and (h + j) % grid]
    v = np.sort(amp[noise])[1:-1]
    return (amp[h] - v.mean()) / v.std(ddof=1) if len(noise) >= 4 else np.nan


def _fpvs_choose(spectra, cands, grid):
    grand = spectra.mean(axis=0)
    chosen, misses = [], 0
    for k, h in cands:
        if _fpvs_z(grand, h, grid) > 1.64:
            chosen.append((k, h))
            misses = 0
        else:
            misses += 1
            if misses == 2:
                break
    return chosen


def _fpvs_responding(spectra, hs, grid):
    out = 0
    for s in spectra:
        p = sorted(0.5 * math.erfc(_fpvs_z(s, h, grid) / math.sqrt(2)) for h in hs)
        holm = [min(1.0, max((len(p) - i) * q for i, q in enumerate(p[: j + 1]))) for j in range(len(p))]
        out += bool(holm) and min(holm) <= 0.05
    return out


def test_harmonic_selection_cross_validated_on_halves_matches_a_numpy_transcription():
    # The lines chosen on half A's grand average, and who responds on each half, as a
    # numpy transcription of the FPVS rule computes them from the run's own per-image
    # spectra (the first three splits; every conv tap of the embedded ResNet-32).
    a = flickertag.analyze("resnet32", taps="conv", harmonic_sum=True, noise_sigma=3.0, stats=False, progress=False)
    cv = a.harmonic_sum_crossval
    assert cv is not None and cv["split"].nunique() == 50
    bins, nb = a.summary["stimulus"]["bins"], a.spectra.shape[2]
    grid = math.gcd(*bins)
    regions = a.summary["stimulus"]["region_names"]
    for _, r in cv[cv["split"] < 3].iterrows():
        half_a = r["images_a"]
        half_b = [i for i in range(a.spectra.shape[0]) if i not in half_a]
        assert len(half_a) == 5 and len(half_b) == 5
        sa = a.spectra[half_a][:, a.rows(r["tap"])].astype(np.float64).mean(axis=0)
        sb = a.spectra[half_b][:, a.rows(r["tap"])].astype(np.float64).mean(axis=0)
        t = regions.index(r["region"])
        cands = [(k, k * bins[t]) for k in range(1, 21) if k * bins[t] + 2 < nb
                 and all(o == t or (k * bins[t]) % b for o, b in enumerate(bins))]
        ca, cb = _fpvs_choose(sa, cands, grid), _fpvs_choose(sb, cands, grid)
        assert [k for k, _ in ca] == r["harmonics_a"] and [k for k, _ in cb] == r["harmonics_b"], r["tap"]
        ha, hb = [h for _, h in ca], [h for _, h in cb]
        got = (r["responding_a"], r["responding_b"], r["responding_b_own"])
        assert got == (_fpvs_responding(sa, ha, grid), _fpvs_responding(sb, ha, grid),
                       _fpvs_responding(sb, hb, grid)), r["tap"]
