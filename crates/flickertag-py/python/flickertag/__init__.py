"""flickertag: frequency tagging (SSVEP) analysis of neural network filters.

Parts of an image flicker at different frequencies (left half 6 Hz, right half 7.5 Hz),
the network sees the frames one by one, and the spectrum of each filter's activation
over time shows which parts drive it and whether it combines them. The paper's
experiment (the embedded ResNet-32 and ten images), held in memory:

>>> import flickertag
>>> a = flickertag.analyze("resnet32", progress=False)
>>> a
<flickertag.Analysis resnet32: 10 images, 32 taps, 261 of 1146 filters important; in memory>
>>> a.layers.shape, a.filters.shape   # DataFrames: one row per layer, one per filter
((32, 7), (1146, 22))
>>> a.spectra.shape                   # numpy [image, row, bin]; a row is a filter
(10, 1146, 121)
>>> a["layer1.0.conv1"].mean_spectra.shape   # one tap: [channel, bin]
(16, 121)
>>> import os, tempfile
>>> folder = a.save(os.path.join(tempfile.mkdtemp(), "r32"))  # as `flickertag analyze --out`
>>> sorted(os.listdir(folder))[:4]
['.flickertag-run', 'coefficients.npy', 'crossval.csv', 'filters.csv']

Main entry points: :func:`analyze`, :func:`load`, :func:`taps`, :func:`evaluate`,
:class:`Analysis`, :class:`FlickertagError`.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
from typing import Any, Optional

from . import _flickertag
from ._analysis import Analysis, Tap, _Files, _read_folder, load
from ._errors import FlickertagError, FlickertagFileNotFoundError, FlickertagOSError
from ._cam import Cam, cam
from ._oddball import Oddball, oddball
from ._truth import ImportanceTruth, importance_truth

__version__ = _flickertag.__version__
__all__ = [
    "analyze",
    "oddball",
    "Oddball",
    "importance_truth",
    "cam",
    "Cam",
    "ImportanceTruth",
    "analyze_shard",
    "merge",
    "load",
    "taps",
    "evaluate",
    "Analysis",
    "Tap",
    "FlickertagError",
    "FlickertagFileNotFoundError",
    "FlickertagOSError",
    "notice",
    "providers",
    "__version__",
]


def _use_onnxruntime_wheel() -> None:
    """Points the extension at the ONNX Runtime library of the `onnxruntime` package
    (a dependency of this one), unless ORT_DYLIB_PATH says otherwise."""
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return  # the extension's own error then says how to get the library
    for root in spec.submodule_search_locations:
        libs = sorted(glob.glob(os.path.join(root, "capi", "libonnxruntime.so*")), key=len)
        libs += sorted(glob.glob(os.path.join(root, "capi", "onnxruntime.dll")))
        libs += sorted(glob.glob(os.path.join(root, "capi", "libonnxruntime*.dylib")), key=len)
        if libs:
            _flickertag.set_ort_library(libs[-1])
            return


_use_onnxruntime_wheel()

def _model_arg(model: Any, input_shape: Optional[tuple], tmp: Optional[str]) -> str:
    """A model spec the extension reads: a pretrained name or a file path. A
    torch.nn.Module is exported to ONNX in `tmp` first."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    if type(model).__module__.startswith("torch") or hasattr(model, "named_modules"):
        from ._torch import export_module

        return export_module(model, input_shape, tmp)
    raise FlickertagError(
        "invalid model: a pretrained name (resnet20, resnet32, resnet44, resnet56), a path to a "
        f".onnx/.th/.pth/.safetensors file, or a torch.nn.Module (got {type(model).__name__})"
    )


def _images_arg(images: Any) -> dict:
    """Keyword arguments for the extension describing `images`."""
    import numpy as np

    if images is None:
        return {}
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, range):
        images = list(images)
    if isinstance(images, (list, tuple)) and any(isinstance(i, (bool, np.bool_)) for i in images):
        # bool is an int in Python: [True, False] would be test images 1 and 0.
        raise FlickertagError(
            "invalid images: CIFAR-10 test indices (ints), image files, or a uint8 array "
            f"[N, H, W, 3] (got a list holding bools: {list(images)[:4]!r})"
        )
    if isinstance(images, (list, tuple)) and images and all(isinstance(i, (int, np.integer)) for i in images):
        return {"selection": {"images": [int(i) for i in images]}}
    if isinstance(images, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in images):
        if not images:
            raise FlickertagError("invalid images: at least one image (got an empty list)")
        return {"selection": {"image_file": [os.fspath(p) for p in images]}}
    is_torch = type(images).__module__.startswith("torch")
    if is_torch:
        images = images.detach().cpu()
    arr = np.asarray(images)
    shape = list(arr.shape)
    # Channels first ([3, H, W] as torchvision.io.read_image gives, [N, 3, H, W] as a
    # DataLoader batch): refused with the exact permute, never guessed.
    chw = arr.ndim in (3, 4) and shape[-3] == 3 and shape[-1] != 3
    if chw:
        axes = "(1, 2, 0)" if arr.ndim == 3 else "(0, 2, 3, 1)"
        fix = f"images.permute{axes}" if is_torch else f"images.transpose{axes}"
    if arr.dtype != np.uint8:
        if is_torch:
            conv = "(images.clamp(0, 1) * 255).round().to(torch.uint8)"
            conv += f".permute{axes}" if chw else ""
        else:
            conv = "(np.clip(images, 0, 1) * 255).round().astype(np.uint8)"
            conv += f".transpose{axes}" if chw else ""
        raise FlickertagError(
            "invalid images: uint8 pixels (0-255) [N, H, W, 3] or [H, W, 3], RGB, not normalized "
            f"(got dtype {arr.dtype}, shape {shape}); for values in [0, 1] (a DataLoader's ToTensor() "
            f"output, before Normalize) pass {conv}"
        )
    if chw:
        raise FlickertagError(
            f"invalid images: channels last, [N, H, W, 3] or [H, W, 3] (got channels first, shape {shape}); "
            f"pass {fix}"
        )
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise FlickertagError(f"invalid images: a uint8 array [N, H, W, 3] or [H, W, 3] (got shape {shape})")
    arr = np.ascontiguousarray(arr)
    return {"pixels": arr.tobytes(), "shape": tuple(int(d) for d in arr.shape)}


def analyze(
    model: Any = "resnet32",
    images: Any = None,
    *,
    freqs: tuple = (6.0, 7.5),
    layout: str = "halves",
    fps: float = 120.0,
    n_frames: int = 240,
    taps: Optional[Any] = None,
    preset: str = "authors",
    threshold: float = 1.5,
    n_images: Optional[int] = None,
    seed: Optional[int] = None,
    threads: Optional[int] = None,
    device: str = "cpu",
    out: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> Analysis:
    """Runs a frequency-tagging analysis and returns it as an :class:`Analysis`.

    Parameters
    ----------
    model : str, path or torch.nn.Module
        A pretrained name (``"resnet32"``: embedded in flickertag; ``"resnet20"``,
        ``"resnet44"``, ``"resnet56"``: from the data folder), a model file (``.onnx``,
        ``.th``, ``.pth``, ``.safetensors``), or a ``torch.nn.Module`` (exported to ONNX
        with torch; ``input_shape=(C, H, W)`` gives its input size, default
        ``(3, 32, 32)``).
    images : None, uint8 array [N, H, W, 3] or [H, W, 3], path(s), or CIFAR-10 indices
        A uint8 array of RGB pixels (0-255), image files (PNG, JPEG), or a list of
        CIFAR-10 test indices (needs the data folder). None: the paper's ten images (the
        first CIFAR-10 test image of each class, embedded in flickertag), or a seeded draw
        of ``n_images`` test images with ``seed`` (needs the data folder).
    freqs, layout, fps, n_frames : stimulus
        One tag frequency (Hz) per region; regions ``halves``, ``left``, ``whole``,
        ``quadrants``, ``grid:RxC`` or ``mask:PATH``; frames per second; frame count.
    taps : None, str (comma-separated, as the CLI's ``--taps``) or list of str
        Tap kinds to record: ``conv``, ``linear``, ``norm``, ``act``, ``add``,
        ``concat``, ``pool``, ``other``, ``all`` (default ``conv`` and ``linear``).
        Single taps go in ``tap=``: module paths as ``named_modules()`` gives them
        (``"layer1.0.conv1"``), glob patterns (``"blocks.*.mlp.fc1"``), ``"#4"`` (the
        4th conv) or any float tensor name of the ONNX graph.
    mean, std : float or sequence of 1 or 3 floats, optional
        The input normalization in [0, 1] pixel units, as torchvision's ``Normalize``.
        Needed when the model does not record it (a ``torch.nn.Module``, an ONNX file
        without ``flickertag.mean``/``flickertag.std`` metadata): flickertag never assumes one.
    resize, crop : int, optional
        Resize images so that the shorter side has ``resize`` pixels, then centre-crop
        ``crop`` x ``crop`` (to run CIFAR images on a 224 x 224 model: ``resize=224``).
    preset, threshold : SNR preset (``authors``, ``mne``, ``fpvs``, ``grid``) and the
        importance threshold on a filter's mean score.
    threads : ONNX Runtime intra-op threads (None: one per core).
    device : ``"cpu"`` or ``"cuda"``: the execution provider, chosen at run time from the
        installed ONNX Runtime (``"cuda"`` needs ``pip install 'flickertag[gpu]'``;
        :func:`providers` lists what is there). An error says what to install.
    out : path, optional
        A run folder to write as well (what ``flickertag analyze --out`` writes), with
        checkpoints every ``checkpoint_every`` seconds (default 30) from which
        ``resume=True`` continues a killed run. None: nothing is written;
        :meth:`Analysis.save` writes the folder later. A folder holding an earlier run is
        replaced only with ``overwrite=True``, one holding other files never.
    progress : progress on stderr; False for silence.
    **options : every other option of ``flickertag analyze``, named as its flag with
        ``_`` for ``-``: the stimulus (``phases``, ``lo``, ``hi``, ``domain``,
        ``allow_leakage``, ``modulation`` = ``"all"``, ``"luminance"``,
        ``"red-green"``, ``"blue-yellow"`` or ``"channel:K"``, ``depth``, ``quantize`` =
        ``"none"``, ``"uint8"`` or ``"jpeg:Q"``: frames stored as 8-bit pixels or JPEG
        files are), the SNR (``noise_n_neighbor_freqs``, ``floor``, ...),
        ``tap``, ``maps``, ``per_image``, ``fold``, ``max_order``, ``batch``, the
        statistics (``stats``, ``q``, ``permutations``, ``splits``, ``stats_seed``), the
        extras (``control="permuted"`` with ``control_seed`` and ``controls``, the
        number of control networks, default 20; ``region_swap=True``,
        ``bootstrap=1000``, a ``noise_sigma`` list for a noise sweep, a
        ``contrast_sweep`` list of depths for contrast-response curves,
        ``harmonic_sum=True`` with a ``noise_sigma`` for the FPVS harmonic-sum response),
        ``warmup`` (frames a recurrent model runs before the recorded window; default:
        the window repeated until its state settles; a model with time, a clip
        ``[N, C, T, H, W]`` or a recurrent state, is found from its graph), ``resume``,
        ``checkpoint_every``, ``all_images=True``, ``data``, ``mean``, ``std``,
        ``resize``, ``crop``. An unknown name is a :class:`FlickertagError` listing the
        known ones.

    Returns
    -------
    Analysis
        The result held in memory (tables as DataFrames at full precision, arrays as
        numpy arrays over the result's memory); the extras' tables are ``a.control``,
        ``a.control_networks``, ``a.control_calibration``, ``a.region_swap``,
        ``a.bootstrap``, ``a.noise_sweep`` and ``a.contrast_response``.

    Raises
    ------
    FlickertagError
        A ``ValueError`` with the message: bad parameter, unreadable file, ...
    KeyboardInterrupt
        Ctrl-C (or a notebook's "interrupt kernel") stops the run within one inference
        batch; nothing is left behind but a checkpoint for ``resume``.

    Examples
    --------
    Three tag frequencies on a 1 x 3 grid of regions, uint8 pixels from numpy:

    >>> import numpy as np, flickertag
    >>> pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    >>> a = flickertag.analyze("resnet32", pixels, freqs=(6, 7.5, 10), layout="grid:1x3",
    ...                        taps="conv", stats=False, progress=False)
    >>> list(a.images["name"]), len(a.taps)
    (['array[0]', 'array[1]'], 31)

    Errors name the argument as Python spells it:

    >>> flickertag.analyze("resnet32", layout="hexagons", progress=False)
    Traceback (most recent call last):
    ...
    flickertag.FlickertagError: invalid layout: one of halves, left, whole, quadrants, ... (got hexagons)
    """
    import tempfile

    # The temporary folder holds only a torch.nn.Module's ONNX export, for the run's time.
    with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
        spec, opts, selection, img, data = _prepare(
            model,
            images,
            tmp,
            freqs=freqs,
            layout=layout,
            fps=fps,
            n_frames=n_frames,
            taps=taps,
            preset=preset,
            threshold=threshold,
            n_images=n_images,
            seed=seed,
            threads=threads,
            device=device,
            **options,
        )
        run, written = _flickertag.analyze(
            spec,
            None if out is None else os.fspath(out),
            _options_json(opts),
            _options_json(selection),
            data=data,
            progress=bool(progress),
            overwrite=bool(overwrite),
            **img,
        )
    return Analysis(run, path=None if written is None else os.fspath(written))


def _options_json(opts: dict) -> str:
    """The options as the extension's JSON; a value JSON cannot hold is an error naming
    the argument."""
    for k, v in opts.items():
        if hasattr(v, "tolist"):  # numpy scalars and arrays (np.float32 is not JSON)
            v = opts[k] = v.tolist()
        try:
            json.dumps(v, allow_nan=False)
        except TypeError:
            raise FlickertagError(
                f"invalid {k}: a number, a string, a bool or a list of them (got {type(v).__name__})"
            ) from None
        except ValueError:  # NaN or infinity, which JSON cannot hold
            raise FlickertagError(f"invalid {k}: finite numbers (got {v!r})") from None
    return json.dumps(opts)


def _prepare(
    model: Any,
    images: Any,
    tmp: str,
    *,
    freqs: tuple = (6.0, 7.5),
    layout: str = "halves",
    fps: float = 120.0,
    n_frames: int = 240,
    taps: Optional[Any] = None,
    preset: str = "authors",
    threshold: float = 1.5,
    n_images: Optional[int] = None,
    seed: Optional[int] = None,
    threads: Optional[int] = None,
    device: str = "cpu",
    **options: Any,
):
    """The extension's arguments for an analysis (keyword arguments and defaults as
    :func:`analyze`'s): model spec, options, image selection, pixel arguments and data
    folder."""
    data = options.pop("data", None)
    input_shape = options.pop("input_shape", None)
    opts: dict = {
        "freqs": [float(f) for f in freqs],
        "layout": str(layout),
        "fps": float(fps),
        "n_frames": int(n_frames),
        "preset": str(preset),
        "threshold": float(threshold),
    }
    if taps is not None:
        # "conv,linear" as the CLI's --taps takes it, or a list.
        kinds = [k.strip() for k in taps.split(",")] if isinstance(taps, str) else list(taps)
        every = ["conv", "linear", "norm", "act", "add", "concat", "pool", "other"]
        opts["taps"] = [k for t in kinds for k in (every if t == "all" else [t])]
    for k in ("mean", "std"):
        if k in options and options[k] is not None and not isinstance(options[k], (list, tuple)):
            options[k] = [float(options[k])]
        elif options.get(k) is not None:
            options[k] = [float(v) for v in options[k]]
    if threads is not None:
        opts["threads"] = int(threads)
    if str(device).lower() not in ("cpu", "cuda"):
        raise FlickertagError(f"invalid device: cpu or cuda (got {device!r})")
    opts["device"] = str(device).lower()
    for k in ("tap", "maps"):
        if isinstance(options.get(k), str):
            options[k] = [options[k]]
    opts.update(options)
    img = _images_arg(images)
    selection = img.pop("selection", {})
    if n_images is not None:
        if images is not None:
            raise FlickertagError("invalid n_images: a seeded draw of test images replaces `images`; pass one of them")
        selection["n_images"] = int(n_images)
    if seed is not None:
        selection["seed"] = int(seed)
    if opts.pop("all_images", False):
        selection["all_images"] = True
    spec = _model_arg(model, input_shape, tmp)
    return spec, opts, selection, img, None if data is None else os.fspath(data)


def analyze_shard(
    model: Any = "resnet32",
    images: Any = None,
    *,
    shard: tuple,
    out: str,
    progress: bool = True,
    **options: Any,
) -> str:
    """Runs shard ``shard = (i, n)`` of the analysis :func:`analyze` would run with the
    same arguments (the i-th of n consecutive blocks of the image list) and writes it as
    a partial run into ``out`` (the same as ``flickertag analyze --shard i/n --out OUT``).
    Every other keyword argument, and its default, is :func:`analyze`'s. Returns
    ``out``. :func:`merge` turns the n partial runs into the whole :class:`Analysis`."""
    import tempfile

    i, n = (int(x) for x in shard)
    with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
        spec, opts, selection, img, data = _prepare(model, images, tmp, **options)
        opts["shard"] = {"index": i, "count": n}
        _, path = _flickertag.analyze(
            spec,
            os.fspath(out),
            _options_json(opts),
            _options_json(selection),
            data=data,
            progress=bool(progress),
            **img,
        )
    assert path is not None
    return os.fspath(path)


def merge(parts: Any, out: Optional[str] = None, *, overwrite: bool = False) -> Analysis:
    """Merges the partial runs ``parts`` (paths, any order: each shard of one run once)
    into the whole run's :class:`Analysis`, written to ``out`` (None: held in memory,
    nothing left on disk). Missing, repeated or foreign shards are a
    :class:`FlickertagError` naming them."""
    import tempfile

    if out is not None:
        _flickertag.merge([os.fspath(p) for p in parts], os.fspath(out), force=overwrite)
        return load(os.fspath(out))
    with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
        folder = _flickertag.merge([os.fspath(p) for p in parts], os.path.join(tmp, "run"))
        return Analysis(_Files(_read_folder(folder)))


def providers() -> dict:
    """The ONNX Runtime library in use and what it can run on: a dict with ``library``
    (its path), ``providers`` (its execution providers, e.g. ``["CPUExecutionProvider"]``,
    or ``"CUDAExecutionProvider"`` first with onnxruntime-gpu) and ``devices`` (the
    ``device=`` values that work: ``["cpu"]`` or ``["cpu", "cuda"]``)."""
    return json.loads(_flickertag.providers())


def taps(model: Any = "resnet32", *, data: Optional[str] = None, input_shape: Optional[tuple] = None):
    """Every tap point of a model as a DataFrame: ``name`` (its ``named_modules()``
    path), ``kind``, ``conv_ordinal``, ``channels``, ``shape`` (what flickertag analyses,
    ``[C, H, W]``), ``layout`` (``channels_first``, ``channels_last``, ``tokens(1+14x14)``,
    ``flat``, ``arranged(16x16, channels axis 2)`` for windows or unfolded patches whose
    batch axis holds more than the frames, ...), ``tensor`` (the ONNX name), ``aliases`` and ``folded``: for a conv
    with a BatchNorm folded into it at export, ``"conv1 + bn1"`` (dynamo exporter: the
    tap is named ``bn1``) or ``"conv1 + BatchNorm (unnamed)"`` (legacy exporter: named
    ``conv1``), because the tap holds the BatchNorm's output and the conv's own output
    is not in the file (None otherwise). A ``torch.nn.Module`` is exported
    without folding, so its convs and BatchNorms are separate taps. What is not a tap,
    and why, is in the DataFrame's ``attrs["skipped"]``; ``attrs["notes"]`` says what
    flickertag assumed while loading, and ``attrs["time"]`` how the model relates frames
    (None: each frame alone; ``{"kind": "clip", "length": T}`` for an input
    ``[N, C, T, H, W]``, whose taps have layout ``clip(t=...)``, the time position read;
    ``{"kind": "recurrent", "states": [...]}`` with each state input and the output
    fed back into it).

    >>> import flickertag
    >>> flickertag.taps("resnet32").head(3)[["name", "kind", "conv_ordinal", "channels"]]
        name  kind  conv_ordinal  channels
    0  conv1  conv             1        16
    1    bn1  norm          <NA>        16
    2   relu   act          <NA>        16
    """
    import tempfile

    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
        got = json.loads(_flickertag.taps(_model_arg(model, input_shape, tmp), data=data))
    rows = [
        {
            "name": t["name"],
            "kind": t["kind"],
            "conv_ordinal": t["conv_ordinal"],
            "channels": t["chw"][0],
            "shape": t["chw"],
            "layout": _layout_name(t["layout"]),
            "tensor": t["tensor"],
            "aliases": t.get("aliases", []),
            "folded": t.get("folded"),
        }
        for t in got["taps"]
    ]
    cols = ["name", "kind", "conv_ordinal", "channels", "shape", "layout", "tensor", "aliases", "folded"]
    df = pd.DataFrame(rows, columns=cols)
    df["conv_ordinal"] = df["conv_ordinal"].astype("Int64")
    df.attrs["skipped"] = got["skipped"]
    df.attrs["notes"] = got["notes"]
    df.attrs["time"] = got.get("time")
    return df


def _layout_name(layout: dict) -> str:
    kind = layout["type"]
    if kind == "tokens":
        grid = layout.get("grid")
        return f"tokens({layout['prefix']}+{grid[0]}x{grid[1]})" if grid else f"tokens({layout['prefix']}+T)"
    if kind == "token":
        return f"token({layout['index']})"
    if kind == "clip":
        return f"clip(t={layout['time']})"
    if kind == "arranged":
        h, w = layout["grid"]
        return f"arranged({h}x{w}, channels axis {layout['channel_axis']})"
    return kind


def evaluate(
    model: Any = "resnet32",
    *,
    data: Optional[str] = None,
    limit: Optional[int] = None,
    threads: Optional[int] = None,
    input_shape: Optional[tuple] = None,
    mean: Any = None,
    std: Any = None,
    resize: Optional[int] = None,
    crop: Optional[int] = None,
) -> dict:
    """Top-1 accuracy on the CIFAR-10 test set (needs the data folder: ``data=`` or
    ``FLICKERTAG_DATA``): a dict with ``model``, ``n``, ``correct``, ``top1`` (percent) and
    ``per_class`` (a pandas Series indexed by class name). ``mean``, ``std``,
    ``resize``, ``crop``: the preprocessing, as in :func:`analyze`. A model without 10
    finite logits is a :class:`FlickertagError`."""
    listed = lambda v: None if v is None else [float(v)] if not isinstance(v, (list, tuple)) else [float(x) for x in v]
    import tempfile

    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
        r = json.loads(
            _flickertag.evaluate(
                _model_arg(model, input_shape, tmp),
                data=data,
                limit=limit,
                threads=0 if threads is None else int(threads),
                mean=listed(mean),
                std=listed(std),
                resize=resize,
                crop=crop,
            )
        )
    r["per_class"] = pd.Series(r["per_class"], index=list(CLASSES), name="top1")
    return r


#: CIFAR-10 class names in label order.
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def notice() -> str:
    """Licences and attribution of what flickertag embeds (the pretrained ResNet-32 and
    the paper's ten CIFAR-10 test images)."""
    return _flickertag.notice()
