"""The Python API against the CLI and against data flickertag did not write.

Needs the flickertag wheel installed (``make test`` builds and installs it) and, for the
CIFAR-10 parts, FLICKERTAG_DATA (as in CI). FLICKERTAG_BIN is the CLI built by cargo.
"""

import csv
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import pytest

import flickertag

BIN = os.environ.get("FLICKERTAG_BIN", os.path.join(os.path.dirname(__file__), "../../../target/release/flickertag"))
RECORD = 3073


def data_dir():
    """FLICKERTAG_DATA, checked; skips (saying so) when unset, fails when incomplete."""
    d = os.environ.get("FLICKERTAG_DATA")
    if not d:
        pytest.skip("FLICKERTAG_DATA is not set (point it at ../shared/data to run this test)")
    assert os.path.isfile(os.path.join(d, "cifar10/test_batch.bin")), f"FLICKERTAG_DATA={d} lacks cifar10/test_batch.bin"
    return d


def cifar_images(d, indices):
    """Test images read straight from the binary file with numpy: uint8 [N, 32, 32, 3]."""
    raw = np.fromfile(os.path.join(d, "cifar10/test_batch.bin"), dtype=np.uint8).reshape(-1, RECORD)
    return raw[indices, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def cli(*args, env=None):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r


def same_files(a, b, names):
    for n in names:
        assert filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False), f"{n} differs"


def summary_without_time(path):
    s = json.load(open(os.path.join(path, "summary.json")))
    s.pop("seconds")
    s.pop("segments")
    return s


FILES = ["filters.csv", "layers.csv", "lines.csv", "sweep.csv", "crossval.csv", "spectra_mean.npy", "scores.npy", "spectra.npy", "coefficients.npy"]


def test_default_is_the_papers_experiment_without_any_data(tmp_path):
    # A fresh environment: no data folder, no caches, the onnxruntime wheel's library.
    env = {k: v for k, v in os.environ.items() if k not in ("FLICKERTAG_DATA", "ORT_DYLIB_PATH")}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path))
    code = (
        "import flickertag, json; a = flickertag.analyze('resnet32', taps='conv', threads=2, progress=False); "
        "print(json.dumps([a.summary['model']['name'], a.summary['model']['source'], len(a.layers), "
        "list(a.images['name']), str(flickertag._flickertag.ort_library())]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    name, source, n_layers, images, lib = json.loads(r.stdout)
    assert (name, source, n_layers) == ("resnet32", "embedded:resnet32-cifar10.th", 31)
    assert images == [f"test[{i}]" for i in (3, 6, 25, 0, 22, 12, 4, 13, 1, 11)]
    import onnxruntime

    assert lib.startswith(os.path.dirname(onnxruntime.__file__)), lib


def folder_files(path):
    """Every file of a run folder by relative path, but the marker (which lists hashes)."""
    out = []
    for root, _, names in os.walk(path):
        out += [os.path.relpath(os.path.join(root, n), path) for n in names]
    return sorted(n for n in out if not n.startswith(".flickertag-"))


def test_numbers_equal_the_clis_on_the_same_run(tmp_path):
    d = data_dir()
    out = tmp_path / "cli"
    cli("analyze", "--model", "resnet32", "--images", "0,1,2", "--threads", "2", "--quiet", "--out", str(out))
    a = flickertag.analyze("resnet32", [0, 1, 2], threads=2, progress=False, data=d)
    assert a.path is None  # held in memory: nothing written
    saved = a.save(str(tmp_path / "py"))
    # The folder save() writes is the CLI's, file for file and byte for byte (figures
    # included), but the run's timings in summary.json and the report that shows them.
    names = folder_files(out)
    assert folder_files(saved) == names and "stimulus.png" in names and "plots/layers.svg" in names
    same_files(saved, out, [n for n in names if n not in ("summary.json", "report.html")])
    assert summary_without_time(saved) == summary_without_time(out)
    c = flickertag.load(str(out))
    np.testing.assert_array_equal(a.scores, c.scores)
    np.testing.assert_array_equal(a.spectra, c.spectra)
    pd.testing.assert_frame_equal(a.filters, c.filters)
    pd.testing.assert_frame_equal(a.layers, c.layers)


def test_in_memory_arrays_are_views_of_the_result_and_tables_hold_every_written_digit(tmp_path):
    before = set(os.listdir(tempfile.gettempdir()))
    a = flickertag.analyze("resnet32", threads=2, progress=False, per_image=True)
    assert {f for f in set(os.listdir(tempfile.gettempdir())) - before if f.startswith("flickertag-")} == set()
    for arr in (a.spectra, a.coefficients):
        # No copy: a read-only view whose base is the extension's result.
        assert not arr.flags.owndata and not arr.flags.writeable
        assert type(arr.base).__name__ == "Run"
    assert np.shares_memory(a["layer1.0.conv1"].spectra, a.spectra)
    with pytest.raises(ValueError, match="read-only"):
        a.spectra[0, 0, 0] = 1.0
    # The oracle for full precision is Python's own float() (correctly rounded) on the
    # text of filters.csv, the shortest text that reads back to the computed value.
    folder = a.save(str(tmp_path / "run"))
    with open(os.path.join(folder, "filters.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    for col in ("mean_score", "sd_score", "pass_fraction", "phase_p", "phase_q", "bca_tag1", "selectivity", "integration"):
        want = np.array([float(r[col]) for r in rows])
        got = a.filters[col].to_numpy(dtype=float)
        assert np.array_equal(want, got, equal_nan=True), col


def test_resume_without_a_run_folder_is_refused_naming_out():
    with pytest.raises(flickertag.FlickertagError, match=r"invalid resume: .*pass out=PATH") as e:
        flickertag.analyze("resnet32", threads=2, progress=False, resume=True)
    assert "--" not in str(e.value)


def test_uint8_array_in_hwc_order_gives_the_cifar_run(tmp_path):
    d = data_dir()
    imgs = cifar_images(d, [0, 1, 2])
    a = flickertag.analyze("resnet32", imgs, threads=2, progress=False, stats=False)
    b = flickertag.analyze("resnet32", [0, 1, 2], threads=2, progress=False, stats=False, data=d)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.coefficients, b.coefficients)
    assert list(a.images["name"]) == ["array[0]", "array[1]", "array[2]"]
    one = flickertag.analyze("resnet32", imgs[1], threads=2, progress=False, stats=False)
    np.testing.assert_array_equal(one.scores[0], b.scores[1])


def test_arrays_and_tables_have_the_documented_shapes():
    a = flickertag.analyze("resnet32", threads=2, progress=False)
    # Default taps: the 31 convs and the Linear classifier; one row per filter, unpadded.
    n_img, rows = 10, 16 * 11 + 32 * 10 + 64 * 10 + 10
    assert a.taps[-1] == "linear" and len(a.taps) == 32
    assert a.spectra.shape == (n_img, rows, 121) and a.spectra.dtype == np.float32
    assert a.coefficients.shape == a.spectra.shape and a.coefficients.dtype == np.complex64
    np.testing.assert_allclose(np.abs(a.coefficients), a.spectra, rtol=1e-5, atol=1e-7)
    assert a.mean_spectra.shape == (rows, 121)
    assert a.scores.shape == (n_img, rows)
    r = a.rows("layer2.0.conv1")
    assert r.stop - r.start == 32 and a.filters["tap"].iloc[r.start] == "layer2.0.conv1"
    np.testing.assert_allclose(a.freqs_hz[[12, 15]], [6.0, 7.5])
    assert list(a.layers.columns) == ["tap", "kind", "conv_ordinal", "n_filters", "n_important", "mean_score", "important"]
    assert len(a.filters) == a.layers["n_filters"].sum() == rows
    assert a.layers["n_important"].tolist() == [len(x) for x in a.layers["important"]]
    s = a.spectrum("#1", 0)
    assert s.index.name == "freq_hz" and s.loc[6.0] > 100 * s.loc[12.0]  # a linear conv: no harmonics
    with pytest.raises(flickertag.FlickertagError, match="invalid tap"):
        a.spectrum("layer9.conv", 0)


def test_save_writes_the_run_folder_and_load_reads_it_back(tmp_path):
    a = flickertag.analyze("resnet32", threads=2, progress=False)
    dest = tmp_path / "saved"
    assert a.save(str(dest)) == str(dest)
    assert {"report.html", "plots", "summary.json", *FILES} <= set(os.listdir(dest))
    # report() writes the same self-contained report on demand.
    assert a.report(str(tmp_path / "r.html")) == str(tmp_path / "r.html")
    assert filecmp.cmp(tmp_path / "r.html", dest / "report.html", shallow=False)
    with pytest.raises(flickertag.FlickertagError, match="held in memory"):
        a.report()
    b = flickertag.load(str(dest))
    assert b.path == str(dest) and b.report() == os.path.join(str(dest), "report.html")
    np.testing.assert_array_equal(a.mean_spectra, b.mean_spectra)
    assert b.summary == a.summary
    with pytest.raises(flickertag.FlickertagError, match=r"overwrite=True to replace that run"):
        a.save(str(dest))
    a.save(str(dest), overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(flickertag.FlickertagError, match=r"files flickertag did not write \(notes.txt\)"):
        a.save(str(tmp_path / "mine"), overwrite=True)
    # A home-like folder that happens to hold a summary.json: never replaced.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("secret")
    (home / "thesis.tex").write_text("chapter 1")
    (home / "summary.json").write_text("{}")
    with pytest.raises(flickertag.FlickertagError, match=r"\.ssh.*thesis\.tex"):
        a.save(str(home), overwrite=True)
    assert (home / ".ssh" / "id_ed25519").read_text() == "secret" and (home / "thesis.tex").exists()
    # A saved run with the user's notes added: refused, naming them, notes kept.
    (dest / "my-notes.md").write_text("keep me")
    with pytest.raises(flickertag.FlickertagError, match=r"files were added to this run \(my-notes.md\)"):
        a.save(str(dest), overwrite=True)
    assert (dest / "my-notes.md").read_text() == "keep me"
    rep = a.report(str(tmp_path / "r.html"))
    assert open(rep).read().startswith("<!DOCTYPE html>")
    with pytest.raises(flickertag.FlickertagError, match="not a complete flickertag run folder"):
        flickertag.load(str(tmp_path))


def test_errors_are_flickertag_errors_with_the_clis_messages(tmp_path):
    assert issubclass(flickertag.FlickertagError, ValueError)
    with pytest.raises(flickertag.FlickertagError, match=r"invalid layout: .*grid:RxC.*\(got hexagons\)"):
        flickertag.analyze("resnet32", layout="hexagons", progress=False)
    r = subprocess.run([BIN, "lines", "--layout", "hexagons"], capture_output=True, text=True)
    assert "invalid layout: one of halves" in r.stderr
    with pytest.raises(flickertag.FlickertagError, match=r"unknown field `fsp`.*`fps`"):
        flickertag.analyze("resnet32", fsp=60, progress=False)
    with pytest.raises(flickertag.FlickertagError, match="freqs"):
        flickertag.analyze("resnet32", freqs=(6.2, 7.5), progress=False)
    with pytest.raises(flickertag.FlickertagError, match="uint8"):
        flickertag.analyze("resnet32", np.zeros((1, 32, 32, 3), dtype=np.float32), progress=False)
    with pytest.raises(flickertag.FlickertagError, match=r"\[1, 1, 32, 32\]"):
        flickertag.analyze("resnet32", np.zeros((1, 32, 32), dtype=np.uint8)[None], progress=False)
    with pytest.raises(flickertag.FlickertagError, match="the model takes 32x32"):
        flickertag.analyze("resnet32", np.zeros((16, 16, 3), dtype=np.uint8), progress=False)
    with pytest.raises(flickertag.FlickertagError, match="invalid model"):
        flickertag.analyze(str(tmp_path / "nope.onnx"), progress=False)
    with pytest.raises(flickertag.FlickertagError, match="invalid model"):
        flickertag.analyze(42, progress=False)


def test_progress_goes_to_stderr_and_is_silent_when_off(capfd):
    flickertag.analyze("resnet32", threads=2, progress=False, stats=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    flickertag.analyze("resnet32", threads=2, progress=True, stats=False)
    out, err = capfd.readouterr()
    # stderr is not a terminal here (as in a log file or SLURM output): whole lines, the
    # first and the last at least, with the time elapsed, and no carriage return.
    assert out == "" and "images: 10/10 (100 %)" in err and "elapsed" in err, err
    assert "\r" not in err
    assert all(line.startswith("flickertag: images: ") for line in err.strip().splitlines()), err


def test_device_is_chosen_at_run_time_and_cuda_without_its_provider_says_what_to_install():
    p = flickertag.providers()
    assert "CPUExecutionProvider" in p["providers"] and os.path.isfile(p["library"])
    assert p["devices"][0] == "cpu"
    cpu = flickertag.analyze("resnet32", device="cpu", threads=2, progress=False, stats=False)
    if "cuda" in p["devices"]:
        pytest.fail("this test expects the CPU-only onnxruntime wheel that make python installs")
    with pytest.raises(flickertag.FlickertagError, match=r"invalid device: .*CUDA.*flickertag\[gpu\]"):
        flickertag.analyze("resnet32", device="cuda", progress=False)
    with pytest.raises(flickertag.FlickertagError, match=r"invalid device: cpu or cuda \(got 'tpu'\)"):
        flickertag.analyze("resnet32", device="tpu", progress=False)
    r = subprocess.run([BIN, "providers", "--json"], capture_output=True, text=True)
    assert r.returncode == 0 and "CPUExecutionProvider" in json.loads(r.stdout)["providers"]
    r = subprocess.run([BIN, "analyze", "--device", "cuda", "--out", "/nonexistent/x"], capture_output=True, text=True)
    assert r.returncode == 1 and "pip install 'flickertag[gpu]'" in r.stderr, r.stderr
    assert cpu.layers.shape[0] > 0


def test_to_xarray_labels_every_unit_and_frequency_with_the_arrays_values():
    xr = pytest.importorskip("xarray", reason="xarray is not installed (make python installs it)")
    a = flickertag.analyze("resnet32", threads=2, progress=False, stats=False)
    ds = a.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert dict(ds.sizes) == {"image": 10, "unit": a.mean_spectra.shape[0], "frequency": 121}
    # One unit by its labels against the tap's rows; frequencies from the stimulus.
    u = ds.where((ds.tap == "layer1.0.conv1") & (ds.channel == 13), drop=True)
    np.testing.assert_array_equal(u["mean_amplitude"].values[0], a.mean_spectra[a.rows("layer1.0.conv1")][13])
    np.testing.assert_array_equal(ds["amplitude"].values, a.spectra)
    assert float(ds.frequency[12]) == 6.0 and ds.frequency.attrs["units"] == "Hz"
    assert set(ds["kind"].values) == set(a.layers["kind"]) and int(ds.conv_ordinal[0]) == 1
    assert list(ds["name"].values) == list(a.images["name"])


def test_save_leaves_no_lock_file(tmp_path):
    a = flickertag.analyze("resnet32", threads=2, progress=False, stats=False)
    a.save(str(tmp_path / "run"))
    assert sorted(os.listdir(tmp_path)) == ["run"]
    assert len(a.summary["segments"]) == 1 and a.summary["segments"][0]["images"] == 10


def test_inference_releases_the_gil():
    ticks = []
    done = threading.Event()

    def work():
        flickertag.analyze("resnet32", threads=1, progress=False, stats=False)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    # With the GIL held for the whole analysis the loop would stall; it keeps ticking.
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and gaps.max() < 0.2, (len(ticks), gaps.max())


def test_taps_lists_every_tap_with_its_shape():
    t = flickertag.taps("resnet32")
    conv = t[t["kind"] == "conv"]
    assert len(conv) == 31 and conv["conv_ordinal"].tolist() == list(range(1, 32))
    assert t.loc[t["name"] == "layer3.4.conv2", "shape"].item() == [64, 8, 8]
    assert set(t["kind"]) == {"conv", "norm", "act", "add", "pool", "linear", "other"}
    assert set(t["layout"]) == {"channels_first", "flat"}
    assert {s["name"] for s in t.attrs["skipped"]} == set()


def test_evaluate_reproduces_the_published_accuracy_on_the_first_1000_images():
    d = data_dir()
    r = flickertag.evaluate("resnet32", data=d, limit=1000, threads=2)
    # ../shared/data/README.md: "ResNet-32 scores 92.8 % on the exact first 1,000 test images".
    assert r["n"] == 1000 and r["top1"] == pytest.approx(92.8, abs=0.05)
    assert list(r["per_class"].index) == list(flickertag.CLASSES)
    with pytest.raises(flickertag.FlickertagError, match="invalid limit"):
        flickertag.evaluate("resnet32", data=d, limit=0)


def test_torch_module_is_exported_and_tapped_by_its_module_names():
    torch = pytest.importorskip("torch", reason="torch is not installed here (make test installs it)")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
            self.head = nn.Linear(4, 10)

        def forward(self, x):
            x = self.features(x)
            return self.head(x.mean((2, 3)))

    torch.manual_seed(0)
    net = Net()
    # A module records no normalization: flickertag stops and asks for it.
    with pytest.raises(flickertag.FlickertagError, match="mean"):
        flickertag.analyze(net, input_shape=(3, 32, 32), threads=1, progress=False, stats=False)
    a = flickertag.analyze(
        net, input_shape=(3, 32, 32), threads=1, progress=False, stats=False, taps="conv",
        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
    )
    names = {n for n, _ in net.named_modules()}
    assert a.taps == ["features.0", "features.2"] and set(a.taps) <= names
    # The per-channel spatial means flickertag recorded equal forward hooks' on the same frames.
    frames = torch.tensor(stim_frames(a), dtype=torch.float32)
    rec = []
    h = net.features[0].register_forward_hook(lambda m, i, o: rec.append(o.mean((2, 3))))
    with torch.no_grad():
        net(frames)
    h.remove()
    series = rec[0].numpy()  # [frames, channels]
    amp = np.abs(np.fft.rfft(series, axis=0)) / series.shape[0]
    np.testing.assert_allclose(a.spectra[0, a.rows("features.0")].T, amp, rtol=1e-4, atol=1e-6 * amp.max())


def test_torch_module_conv_and_batchnorm_are_separate_taps_that_equal_their_hooks():
    torch = pytest.importorskip("torch", reason="torch is not installed here (make test installs it)")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(6)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(6, 10)

        def forward(self, x):
            return self.fc(self.relu(self.bn1(self.conv1(x))).mean((2, 3)))

    torch.manual_seed(1)
    net = Net().eval()
    with torch.no_grad():  # BatchNorm statistics far from identity: folding would show
        net.bn1.running_mean.uniform_(-0.5, 0.5)
        net.bn1.running_var.uniform_(0.2, 3.0)
        net.bn1.weight.uniform_(0.5, 2.0)
        net.bn1.bias.uniform_(-0.5, 0.5)
    norm = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    t = flickertag.taps(net)
    assert {"conv1", "bn1"} <= set(t["name"]) and t["folded"].isna().all()
    a = flickertag.analyze(net, taps=["conv", "norm"], threads=1, progress=False, stats=False, **norm)
    assert a.taps == ["conv1", "bn1"]
    frames = torch.tensor(stim_frames(a), dtype=torch.float32)
    rec = {}
    hooks = [getattr(net, m).register_forward_hook(lambda mod, i, o, m=m: rec.__setitem__(m, o.mean((2, 3))))
             for m in ("conv1", "bn1")]
    with torch.no_grad():
        net(frames)
    for h in hooks:
        h.remove()
    for m in ("conv1", "bn1"):
        series = rec[m].numpy()
        amp = np.abs(np.fft.rfft(series, axis=0)) / series.shape[0]
        np.testing.assert_allclose(a.spectra[0, a.rows(m)].T, amp, rtol=1e-4, atol=1e-5 * amp.max(), err_msg=m)
    # The train/eval state the module came in with is given back.
    net.train()
    flickertag.taps(net)
    assert net.training


def test_channels_first_and_float_images_are_refused_with_the_exact_conversion():
    with pytest.raises(flickertag.FlickertagError, match=r"channels first, shape \[3, 32, 32\]\); pass images.transpose\(1, 2, 0\)"):
        flickertag.analyze("resnet32", np.zeros((3, 32, 32), dtype=np.uint8), progress=False)
    with pytest.raises(flickertag.FlickertagError, match=r"pass images.transpose\(0, 2, 3, 1\)"):
        flickertag.analyze("resnet32", np.zeros((2, 3, 32, 32), dtype=np.uint8), progress=False)
    with pytest.raises(flickertag.FlickertagError, match=r"pass \(np.clip\(images, 0, 1\) \* 255\).round\(\).astype\(np.uint8\).transpose\(0, 2, 3, 1\)"):
        flickertag.analyze("resnet32", np.zeros((2, 3, 32, 32), dtype=np.float32), progress=False)
    torch = pytest.importorskip("torch", reason="torch is not installed here (make test installs it)")
    img = torch.zeros((3, 32, 32), dtype=torch.uint8)  # what torchvision.io.read_image gives
    with pytest.raises(flickertag.FlickertagError, match=r"pass images.permute\(1, 2, 0\)"):
        flickertag.analyze("resnet32", img, progress=False)
    a = flickertag.analyze("resnet32", img.permute(1, 2, 0), progress=False, stats=False)
    assert len(a.images) == 1
    batch = torch.rand((2, 3, 32, 32))  # a DataLoader batch after ToTensor()
    with pytest.raises(flickertag.FlickertagError, match=r"\(images.clamp\(0, 1\) \* 255\).round\(\).to\(torch.uint8\).permute\(0, 2, 3, 1\)"):
        flickertag.analyze("resnet32", batch, progress=False)


def stim_frames(a):
    """The paper's stimulus on the first default image, rebuilt from the method text:
    x_i = (img - mean)/std * s_r(i), s(i) = 0.75 + 0.25 sin(2 pi f i / fps)."""
    raw = _first_embedded_image()
    mean = np.array(a.summary["model"]["preprocess"]["mean"], dtype=np.float32)[:, None, None]
    std = np.array(a.summary["model"]["preprocess"]["std"], dtype=np.float32)[:, None, None]
    x = (raw - mean) / std
    cfg = a.summary["stimulus"]["config"]
    n, fps = cfg["n_frames"], cfg["fps"]
    i = np.arange(n)
    s = [0.75 + 0.25 * np.sin(2 * np.pi * f * i / fps) for f in cfg["freqs"]]
    frames = np.repeat(x[None], n, axis=0)
    w = x.shape[-1]
    frames[:, :, :, : w // 2] *= s[0][:, None, None, None]
    frames[:, :, :, w // 2 :] *= s[1][:, None, None, None]
    return frames


def _first_embedded_image():
    # The first default image is CIFAR-10 test image 3 (a cat); from the data folder when
    # there is one, else skip: the oracle must not come from flickertag itself.
    d = data_dir()
    return cifar_images(d, [3])[0].transpose(2, 0, 1).astype(np.float32) / 255.0


def test_paper_example_runs_and_draws_its_figure(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (make python installs it)")
    example = os.path.join(os.path.dirname(__file__), "../../../examples/paper.py")
    out = tmp_path / "paper.png"
    r = subprocess.run([sys.executable, example, str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "layer3.4.conv2" in r.stdout and out.stat().st_size > 10_000
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_shards_merged_equal_the_single_process_run(tmp_path):
    whole = flickertag.analyze("resnet32", threads=2, progress=False)
    parts = [
        flickertag.analyze_shard("resnet32", shard=(i, 3), out=str(tmp_path / f"p{i}"), threads=2, progress=False)
        for i in (2, 0, 1)
    ]
    m = flickertag.merge(parts, str(tmp_path / "merged"))
    np.testing.assert_array_equal(m.scores, whole.scores)
    np.testing.assert_array_equal(m.spectra, whole.spectra)
    np.testing.assert_array_equal(m.coefficients, whole.coefficients)
    np.testing.assert_allclose(m.mean_spectra, whole.mean_spectra, rtol=1e-12)
    pd.testing.assert_frame_equal(m.filters, whole.filters)
    with pytest.raises(flickertag.FlickertagError, match="missing: 1/3"):
        flickertag.merge(parts[:2])


def test_ray_tasks_give_the_single_process_run():
    ray = pytest.importorskip("ray", reason="Ray is not installed (make python installs it)")
    import flickertag.ray as fray

    d = data_dir()
    saved = os.environ.pop("FLICKERTAG_DATA")
    whole = flickertag.analyze("resnet32", threads=2, progress=False)  # the embedded images
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        a = fray.analyze("resnet32", shards=3, num_cpus=1, progress=False)
        # A missing data folder is one error from the driver, before any task runs (a
        # RayTaskError per task before).
        with pytest.raises(flickertag.FlickertagError, match="invalid data: an existing folder"):
            fray.analyze("resnet32", images=[0, 1, 2], data="/nonexistent/cifar", shards=2, progress=False)
        with pytest.raises(flickertag.FlickertagError, match="data folder"):
            fray.analyze("resnet32", images=[0, 1, 2], shards=2, progress=False)
        # The data folder set after ray.init() reaches the workers (their runtime env).
        os.environ["FLICKERTAG_DATA"] = d
        c = fray.analyze("resnet32", images=[5, 6, 7, 8], shards=2, num_cpus=1, progress=False)
    finally:
        ray.shutdown()
        os.environ["FLICKERTAG_DATA"] = saved
    np.testing.assert_array_equal(a.scores, whole.scores)
    np.testing.assert_array_equal(a.spectra, whole.spectra)
    np.testing.assert_allclose(a.mean_spectra, whole.mean_spectra, rtol=1e-12)
    assert list(a.images["name"]) == list(whole.images["name"])
    single = flickertag.analyze("resnet32", images=[5, 6, 7, 8], threads=2, progress=False)
    np.testing.assert_array_equal(c.scores, single.scores)
    assert [g["part"] for g in c.summary["segments"]] == ["shard 0/2", "shard 1/2", "merge"]


def test_slurm_recipe_commands_are_the_tested_ones(tmp_path):
    """Runs the commands of examples/slurm/*.sbatch as SLURM would, shard by shard."""
    root = os.path.join(os.path.dirname(__file__), "../../..")
    array = open(os.path.join(root, "examples/slurm/analyze-array.sbatch")).read()
    merge = open(os.path.join(root, "examples/slurm/merge.sbatch")).read()
    n = 3
    env = {k: v for k, v in os.environ.items() if k != "FLICKERTAG_DATA"}
    env.update(FLICKERTAG=BIN, N=str(n), RUN=str(tmp_path / "run"), PARTS=str(tmp_path / "parts"), HOME=str(tmp_path))
    for i in range(n):
        r = subprocess.run(["bash", "-c", array], env={**env, "SLURM_ARRAY_TASK_ID": str(i)}, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", "-c", merge], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = flickertag.load(str(tmp_path / "run"))
    whole = flickertag.analyze("resnet32", threads=2, progress=False)
    np.testing.assert_array_equal(m.scores, whole.scores)


ZOO = os.path.join(os.path.dirname(__file__), "..", "..", "flickertag-cli", "tests", "zoo")


def test_taps_of_a_vit_name_modules_and_lay_tokens_out():
    t = flickertag.taps(os.path.join(ZOO, "vit_tiny.dynamo.onnx"))
    fc1 = t[t["name"] == "blocks.0.mlp.fc1"].iloc[0]
    assert fc1["kind"] == "linear" and fc1["layout"] == "tokens(1+4x4)" and fc1["shape"] == [128, 4, 4]
    assert t[t["name"] == "blocks.0.mlp.fc1:cls"].iloc[0]["layout"] == "token(0)"
    assert t[t["name"] == "blocks.0.mlp.act"].iloc[0]["kind"] == "act"
    assert any("not determined" in s["reason"] for s in t.attrs["skipped"])


def test_taps_of_swin_windows_are_arranged_on_the_grid():
    t = flickertag.taps(os.path.join(ZOO, "swin.dynamo.onnx"))
    qkv = t[t["name"] == "layers.0.blocks.1.attn.qkv"].iloc[0]
    assert qkv["layout"] == "arranged(16x16, channels axis 2)" and qkv["shape"] == [48, 16, 16]
    assert t[t["name"] == "layers.0.blocks.1"].iloc[0]["layout"] == "channels_last"
    assert any("attention scores" in s["reason"] for s in t.attrs["skipped"])


def test_a_model_without_normalization_needs_mean_and_std_and_rows_index_its_filters():
    model = os.path.join(ZOO, "external", "default.onnx")
    img = os.path.join(ZOO, "image.png")
    with pytest.raises(flickertag.FlickertagError, match="mean"):
        flickertag.analyze(model, [img], progress=False, stats=False)
    a = flickertag.analyze(model, [img], progress=False, stats=False, mean=0.5, std=0.25, taps="all")
    assert a.summary["model"]["preprocess"]["grayscale"] is True
    assert a.mean_spectra.shape == (len(a.filters), 121)
    for tap in a.taps:
        r = a.rows(tap)
        assert (a.filters["tap"].iloc[r] == tap).all()


def test_defaults_of_the_keyword_arguments_are_the_librarys():
    import inspect

    lib = json.loads(flickertag._flickertag.default_options())
    sig = inspect.signature(flickertag.analyze).parameters
    for name in ("layout", "fps", "n_frames", "preset", "threshold", "device"):
        assert sig[name].default == lib[name], name
    assert list(sig["freqs"].default) == lib["freqs"]
    # Every library option is a keyword argument: an unknown one is refused, these are not.
    spec, opts, *_ = flickertag._prepare("resnet32", None, "/nonexistent", **{k: v for k, v in lib.items()})
    assert set(lib) <= set(opts)


def test_extras_run_from_python_and_equal_the_clis_tables(tmp_path):
    extras = dict(control="permuted", control_seed=3, controls=3, region_swap=True, bootstrap=20,
                  noise_sigma=[0.05, 0.2])
    a = flickertag.analyze("resnet32", images=[0, 1, 2, 3] if os.environ.get("FLICKERTAG_DATA") else None,
                           threads=2, progress=False, **extras)
    assert a.control is not None and list(a.control.columns[:3]) == ["tap", "n_filters", "trained_mean"]
    assert len(a.control) == len(a.taps)
    assert set(a.control_networks["n_controls"]) == {3}
    assert len(a.control_calibration) > 0
    assert set(a.noise_sweep["sigma"]) == {0.05, 0.2}
    assert set(a.region_swap["tap"]) == set(a.taps)
    assert a.bootstrap is not None and len(a.bootstrap) > 0
    args = ["analyze", "--quiet", "--threads", "2", "--control", "permuted", "--control-seed", "3", "--controls", "3",
            "--region-swap",
            "--bootstrap", "20", "--noise-sigma", "0.05,0.2", "--out", str(tmp_path / "cli")]
    if os.environ.get("FLICKERTAG_DATA"):
        args += ["--images", "0,1,2,3"]
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    saved = a.save(str(tmp_path / "py"))
    for name in ("control.csv", "control.json", "control_networks.csv", "control_calibration.csv", "region_swap.csv",
                 "bootstrap.csv", "noise_sweep.csv", "filters.csv"):
        assert filecmp.cmp(os.path.join(saved, name), tmp_path / "cli" / name, shallow=False), name


def test_one_tap_by_name_holds_its_rows():
    a = flickertag.analyze("resnet32", threads=2, progress=False, stats=False)
    t = a["layer1.0.conv1"]
    rows = a.rows("layer1.0.conv1")
    assert t.name == "layer1.0.conv1" and len(t.filters) == 16
    np.testing.assert_array_equal(t.mean_spectra, a.mean_spectra[rows])
    np.testing.assert_array_equal(t.spectra, a.spectra[:, rows])
    assert list(t.filters["channel"]) == list(range(16))
    with pytest.raises(flickertag.FlickertagError, match="invalid tap"):
        a["layer9.conv"]


def test_out_writes_the_run_folder_and_errors_name_python_arguments(tmp_path):
    out = tmp_path / "run"
    a = flickertag.analyze("resnet32", out=str(out), threads=2, progress=False, stats=False)
    assert a.path == str(out) and (out / "report.html").is_file()
    with pytest.raises(flickertag.FlickertagError, match=r"overwrite=True") as e:
        flickertag.analyze("resnet32", out=str(out), threads=2, progress=False, stats=False)
    assert "--" not in str(e.value) and "  " not in str(e.value)
    flickertag.analyze("resnet32", out=str(out), overwrite=True, threads=2, progress=False, stats=False)
    with pytest.raises(flickertag.FlickertagError, match=r"pass resize=32 \(and crop=32") as e:
        flickertag.analyze("resnet32", np.zeros((16, 16, 3), dtype=np.uint8), progress=False)
    assert "--" not in str(e.value) and "  " not in str(e.value)
    with pytest.raises(flickertag.FlickertagError, match=r"invalid noise_sigma: "):
        flickertag.analyze("resnet32", noise_sigma=-1.0, progress=False)
    with pytest.raises(flickertag.FlickertagFileNotFoundError) as e:
        flickertag.analyze("resnet32", [str(tmp_path / "nope.png")], progress=False)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)


def test_ctrl_c_stops_a_run_within_a_second_and_leaves_no_temporary_folder(tmp_path):
    import signal

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # Python's own Ctrl-C handler, as a terminal or a notebook has it: a process started
    # in the background by a non-interactive shell (as CI may be) inherits SIGINT ignored.
    script = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import numpy as np, sys, time, flickertag\n"
        "imgs = np.random.default_rng(0).integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)\n"
        "try:\n"
        "    flickertag.analyze('resnet32', imgs, threads=1, fold=False, stats=False, progress=True)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted at', time.monotonic(), flush=True)\n"
        "    sys.exit(3)\n"
    )
    env = dict(os.environ, TMPDIR=str(tmp))
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         text=True)
    try:
        # Wait until the call has started (its temporary folder), then press Ctrl-C.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(p.name.startswith("flickertag-") for p in tmp.iterdir()):
            time.sleep(0.05)
        time.sleep(2.0)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 3, (out, err)
    stopped = float(out.split()[-1])
    assert stopped - sent < 1.5, f"{stopped - sent:.2f} s from Ctrl-C to KeyboardInterrupt"
    # (ONNX Runtime 1.31 keeps a `.ses` session-id file in TMPDIR: not ours, and not temporary.)
    left = [p.name for p in tmp.iterdir() if p.name != ".ses"]
    assert left == [], left


def test_the_extension_stub_matches_the_extension():
    """_flickertag.pyi (generated by pyo3-stub-gen from the Rust: `make stubs`, checked
    fresh by `make test`) against the extension itself: the same functions, each with
    the same parameters and defaults as its text signature (pyo3 writes it from the
    Rust). A default the generator writes as ``...`` must exist; any other must equal."""
    import ast
    import inspect

    import flickertag._flickertag as ext

    stub = ast.parse(open(os.path.join(os.path.dirname(flickertag.__file__), "_flickertag.pyi")).read())
    funcs = {f.name: f for f in stub.body if isinstance(f, ast.FunctionDef)}
    real = {n for n, v in vars(ext).items() if callable(v) and not n.startswith("_") and not isinstance(v, type)}
    assert set(funcs) == real, (set(funcs) ^ real)
    for name, f in funcs.items():
        sig = inspect.signature(getattr(ext, name))
        params = [a.arg for a in f.args.args]
        assert params == list(sig.parameters), name
        defaults = [ast.literal_eval(d) for d in f.args.defaults]
        real_defaults = [p.default for p in sig.parameters.values() if p.default is not inspect.Parameter.empty]
        assert len(defaults) == len(real_defaults), name
        assert all(d is Ellipsis or d == r for d, r in zip(defaults, real_defaults)), name
    classes = {c.name: c for c in stub.body if isinstance(c, ast.ClassDef)}
    real_classes = {n for n, v in vars(ext).items() if isinstance(v, type) and not n.startswith("_")}
    assert set(classes) == real_classes, (set(classes) ^ real_classes)
    for cname, c in classes.items():
        methods = {f.name: f for f in c.body if isinstance(f, ast.FunctionDef)}
        cls = getattr(ext, cname)
        real_methods = {n for n in dir(cls) if not n.startswith("_")}
        assert set(methods) == real_methods, (cname, set(methods) ^ real_methods)
        for name, f in methods.items():
            sig = inspect.signature(getattr(cls, name))
            assert [a.arg for a in f.args.args] == list(sig.parameters), (cname, name)
            defaults = [ast.literal_eval(d) for d in f.args.defaults]
            real = [p.default for p in sig.parameters.values() if p.default is not inspect.Parameter.empty]
            assert len(defaults) == len(real) and all(d is Ellipsis or d == r for d, r in zip(defaults, real))
    assert os.path.isfile(os.path.join(os.path.dirname(flickertag.__file__), "py.typed"))


def test_docstring_examples_run_and_print_what_they_show():
    """Every ``>>>`` example in the package's docstrings, run by doctest against its
    printed output."""
    import doctest

    import flickertag._analysis

    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    attempted = 0
    for module in (flickertag, flickertag._analysis):
        r = doctest.testmod(module, optionflags=flags, raise_on_error=False, verbose=False)
        assert r.failed == 0, f"{module.__name__}: {r.failed} of {r.attempted} examples failed (output above)"
        attempted += r.attempted
    assert attempted >= 15, attempted


def test_examples_type_check_with_mypy_strict():
    """The examples against the package's annotations and the extension's stub."""
    root = os.path.join(os.path.dirname(__file__), "../../..")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", os.path.join(root, "examples/paper.py")],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


# Bad arguments, each as Python keyword arguments and as CLI flags, with the name each
# face must use for it. Both faces run the same library check.
ERROR_CASES = [
    ({"layout": "hexagons"}, ["--layout", "hexagons"], "layout", "--layout"),
    ({"n_frames": 1_000_000_000}, ["--n-frames", "1000000000"], "n_frames", "--n-frames"),
    ({"freqs": (6.2, 7.5)}, ["--freqs", "6.2,7.5"], "allow_leakage=True", "--allow-leakage"),
    ({"q": 2.0}, ["--q", "2"], "invalid q:", "invalid --q:"),
    ({"noise_sigma": -1.0}, ["--noise-sigma=-1"], "invalid noise_sigma:", "invalid --noise-sigma:"),
    ({"noise_sigma": [0.1, -1.0]}, ["--noise-sigma=0.1,-1"], "invalid noise_sigma:", "invalid --noise-sigma:"),
    ({"checkpoint_every": -1.0}, ["--checkpoint-every=-1"], "invalid checkpoint_every:", "invalid --checkpoint-every:"),
    ({"region_swap": True, "freqs": (6, 7.5, 9), "layout": "grid:1x3"},
     ["--region-swap", "--freqs", "6,7.5,9", "--layout", "grid:1x3"], "invalid region_swap:", "invalid --region-swap:"),
    ({"bootstrap": 10, "shard": {"index": 0, "count": 2}}, ["--bootstrap", "10", "--shard", "0/2"],
     "invalid bootstrap:", "invalid --bootstrap:"),
    ({"threshold": float("nan")}, ["--threshold", "nan"], "invalid threshold:", "invalid --threshold:"),
    ({"max_order": 0}, ["--max-order", "0"], "max_order", "--max-order"),
]


@pytest.mark.parametrize("kwargs,flags,py_name,cli_name", ERROR_CASES)
def test_every_error_message_reads_right_in_both_faces(tmp_path, kwargs, flags, py_name, cli_name):
    kw = dict(kwargs)
    shard = kw.pop("shard", None)
    if shard:
        with pytest.raises(flickertag.FlickertagError) as e:
            flickertag.analyze_shard("resnet32", shard=(shard["index"], shard["count"]), out=str(tmp_path / "p"),
                                     progress=False, **kw)
    else:
        with pytest.raises(flickertag.FlickertagError) as e:
            flickertag.analyze("resnet32", progress=False, **kw)
    py = str(e.value)
    r = subprocess.run([BIN, "analyze", "--quiet", *flags, "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert r.returncode in (1, 2), r.stderr
    cli = r.stderr
    assert py_name in py and "--" not in py, py
    assert cli_name in cli, cli
    for m in (py, cli):
        assert "  " not in m.strip() and not re.search(r"<[a-z-]+( [^>]*)?>", m), m
    assert "line 1 column" not in py, py


def test_an_analysis_pickles_with_its_numbers_and_saves_the_same_folder(tmp_path):
    import pickle

    a = flickertag.analyze("resnet32", threads=2, progress=False, bootstrap=10)
    b = pickle.loads(pickle.dumps(a))
    assert b.path is None
    np.testing.assert_array_equal(a.spectra, b.spectra)
    np.testing.assert_array_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.filters, b.filters)
    pd.testing.assert_frame_equal(a.bootstrap, b.bootstrap)
    b.save(str(tmp_path / "from-pickle"))
    a.save(str(tmp_path / "original"))
    same_files(tmp_path / "original", tmp_path / "from-pickle", FILES + ["summary.json", "report.html", "bootstrap.csv"])
    # A pickle of a loaded folder is held in memory too and saves the same folder.
    c = pickle.loads(pickle.dumps(flickertag.load(str(tmp_path / "original"))))
    c.save(str(tmp_path / "again"))
    same_files(tmp_path / "original", tmp_path / "again", FILES + ["summary.json", "report.html", "bootstrap.csv"])


def test_a_panic_in_the_library_is_a_flickertag_error_not_a_panic_exception():
    """pyo3 turns a panic into PanicException, a BaseException that `except Exception`
    does not catch; every call into the library turns it into FlickertagError."""
    import flickertag._flickertag as ext

    try:
        ext._panic_for_test()  # type: ignore[attr-defined]  # private, not in the stub
    except Exception as e:  # noqa: BLE001 - the point: a plain `except Exception` catches it
        assert isinstance(e, flickertag.FlickertagError), type(e)
        assert "internal error" in str(e) and "a deliberate panic" in str(e), str(e)
    else:
        raise AssertionError("no error raised")


def test_load_refuses_tampered_run_folders_naming_the_file(tmp_path):
    """`load` checks a folder as strictly as `flickertag report` (the library's own
    check) before it maps any array: each tampered copy is an error naming its file."""
    import shutil

    good = tmp_path / "good"
    flickertag.analyze("resnet32", images=[0, 1], threads=2, progress=False).save(str(good))
    n_rows = flickertag.load(str(good)).scores.shape[1]

    def scores_of_another_shape(d):
        np.save(d / "scores.npy", np.zeros((3, n_rows)))

    def spectra_in_fortran_order(d):
        s = np.load(d / "spectra.npy")
        np.save(d / "spectra.npy", np.asfortranarray(s))

    def spectra_cut_short(d):
        b = (d / "spectra.npy").read_bytes()
        (d / "spectra.npy").write_bytes(b[: len(b) // 2])

    def summary_without_taps(d):
        s = json.loads((d / "summary.json").read_text())
        del s["taps"]
        (d / "summary.json").write_text(json.dumps(s))

    def filters_missing_rows(d):
        lines = (d / "filters.csv").read_text().splitlines(keepends=True)
        (d / "filters.csv").write_text("".join(lines[:-5]))

    def scores_as_float32(d):
        np.save(d / "scores.npy", np.load(d / "scores.npy").astype(np.float32))

    cases = [
        (scores_of_another_shape, r"scores\.npy.*shape \[3, "),
        (spectra_in_fortran_order, r"spectra\.npy.*Fortran order"),
        (spectra_cut_short, r"spectra\.npy.*bytes, but header and data make"),
        (summary_without_taps, r"summary\.json.*taps"),
        (filters_missing_rows, r"filters\.csv: .* rows, but summary\.json's taps have"),
        (scores_as_float32, r"scores\.npy: dtype <f4"),
    ]
    for i, (tamper, message) in enumerate(cases):
        d = tmp_path / f"t{i}"
        shutil.copytree(good, d)
        tamper(d)
        with pytest.raises(flickertag.FlickertagError, match=message):
            flickertag.load(str(d))
    assert flickertag.load(str(good)).scores.shape == (2, n_rows)


def test_python_values_that_would_pass_as_something_else_are_refused_naming_the_argument():
    # [True, False] are ints to Python: they were CIFAR-10 test images 1 and 0.
    with pytest.raises(flickertag.FlickertagError, match=r"invalid images: .*bools"):
        flickertag.analyze("resnet32", images=[True, False], progress=False)
    # numpy scalars are options like any number; NaN among them is refused by name.
    with pytest.raises(flickertag.FlickertagError, match=r"invalid threshold: finite numbers \(got nan\)"):
        flickertag.analyze("resnet32", threshold=np.float32("nan"), progress=False)
    with pytest.raises(flickertag.FlickertagError, match=r"invalid noise_sigma: finite numbers"):
        flickertag.analyze("resnet32", noise_sigma=np.array([0.1, np.inf]), progress=False)
    # An array is bounded as an image file is (a 9000 x 9000 array grew to 5.3 GB).
    with pytest.raises(flickertag.FlickertagError, match=r"invalid images: images of 1 to 8192 pixels a side"):
        flickertag.analyze("resnet32", images=np.zeros((1, 8193, 4, 3), np.uint8), progress=False)
