"""The result of an analysis: held in memory (what :func:`flickertag.analyze` returns),
or read from a run folder (:func:`load`), or unpickled."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence

import numpy as np
import pandas as pd

from ._errors import FlickertagError

#: Files every run folder holds; `load` refuses a folder without them.
REQUIRED = ("summary.json", "layers.csv", "filters.csv", "lines.csv", "spectra_mean.npy", "scores.npy")
#: The tables a run may hold (summary, CSVs, the control's JSON), read into memory.
TABLES = (
    "summary.json", "filters.csv", "sweep.csv", "crossval.csv", "layers.csv", "lines.csv", "control.csv",
    "control.json", "control_networks.csv", "control_calibration.csv", "bootstrap.csv", "noise_sweep.csv",
    "region_swap.csv", "contrast_response.csv", "harmonic_sum.csv", "harmonic_sum_harmonics.csv",
    "harmonic_sum_crossval.csv",
)
#: The arrays of a run, by the names of their ``.npy`` files.
ARRAYS = ("spectra_mean", "scores", "spectra", "coefficients")


# Before pandas 3 the default float parser can be 1 ulp off the text flickertag wrote
# (the shortest text that reads back to the exact value): "round_trip" reads it exactly.
# pandas 3 parses exactly by default and deprecates the argument.
_EXACT: Dict[str, Any] = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def _csv(data: Optional[bytes]) -> Optional[pd.DataFrame]:
    return None if data is None else pd.read_csv(io.BytesIO(data), **_EXACT)


def _lists(df: Optional[pd.DataFrame], columns: Sequence[str]) -> Optional[pd.DataFrame]:
    """Space-separated integer columns as lists of int (an empty field: an empty list)."""
    if df is not None:
        for c in columns:
            df[c] = [[] if isinstance(v, float) else [int(x) for x in str(v).split()] for v in df[c]]
    return df


class _Memory:
    """An analysis held by the extension (``_flickertag.Run``): tables as the bytes the
    run folder would hold, arrays over the result's own memory, the folder written on
    demand."""

    def __init__(self, run: Any):
        self.run = run

    def tables(self) -> Dict[str, bytes]:
        return dict(self.run.tables())

    def array(self, name: str) -> Optional[np.ndarray]:
        return self.run.array(name)

    def save(self, path: str, overwrite: bool) -> str:
        return os.fspath(self.run.save(path, overwrite=overwrite))

    def files(self) -> Dict[str, bytes]:
        with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
            return _read_folder(self.run.save(os.path.join(tmp, "run")))


class _Files:
    """An analysis as the bytes of its run folder's files (a folder read, an unpickled
    analysis): nothing on disk until saved."""

    def __init__(self, files: Dict[str, bytes]):
        self.data = files

    def tables(self) -> Dict[str, bytes]:
        return {k: v for k, v in self.data.items() if k in TABLES}

    def array(self, name: str) -> Optional[np.ndarray]:
        data = self.data.get(name + ".npy")
        return None if data is None else np.load(io.BytesIO(data))

    def save(self, path: str, overwrite: bool) -> str:
        from ._flickertag import copy_run_folder

        with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
            root = os.path.join(tmp, "run")
            for rel, data in self.data.items():
                full = os.path.normpath(os.path.join(root, rel))
                if not full.startswith(root + os.sep):
                    raise FlickertagError(f"invalid run folder: a file outside the folder ({rel!r})")
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as f:
                    f.write(data)
            return os.fspath(copy_run_folder(root, path, force=overwrite))

    def files(self) -> Dict[str, bytes]:
        return self.data


class _Folder:
    """An analysis read from its run folder: tables read once, arrays memory-mapped."""

    def __init__(self, path: str):
        from ._flickertag import check_run_folder

        missing = [f for f in REQUIRED if not os.path.isfile(os.path.join(path, f))]
        if missing:
            raise FlickertagError(f"{path}: not a complete flickertag run folder (missing {', '.join(missing)})")
        # As strictly as `flickertag report` reads it, before any array is mapped.
        check_run_folder(path)
        self.path = path

    def tables(self) -> Dict[str, bytes]:
        out = {}
        for name in TABLES:
            full = os.path.join(self.path, name)
            if os.path.isfile(full):
                with open(full, "rb") as f:
                    out[name] = f.read()
        return out

    def array(self, name: str) -> Optional[np.ndarray]:
        full = os.path.join(self.path, name + ".npy")
        return np.load(full, mmap_mode="r") if os.path.isfile(full) else None

    def save(self, path: str, overwrite: bool) -> str:
        from ._flickertag import copy_run_folder

        if os.path.abspath(path) == os.path.abspath(self.path):
            return path
        return os.fspath(copy_run_folder(self.path, path, force=overwrite))

    def files(self) -> Dict[str, bytes]:
        return _read_folder(self.path)


def _read_folder(path: Any) -> Dict[str, bytes]:
    """Every file of a run folder by relative path (locks and checkpoints left out: they
    are not part of the run)."""
    files = {}
    for root, _, names in os.walk(path):
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            if rel.startswith(".flickertag-") and rel != ".flickertag-run":
                continue
            with open(full, "rb") as f:
                files[rel] = f.read()
    return files


class Tap:
    """One tap of an :class:`Analysis` (``a["layer1.0.conv1"]``).

    Attributes
    ----------
    name : str
        The tap's name.
    filters : DataFrame
        Its rows of ``Analysis.filters``, one per channel.
    mean_spectra : ndarray
        float64 ``[channel, bin]``.
    scores : ndarray
        float64 ``[image, channel]``.
    spectra : ndarray or None
        float32 ``[image, channel, bin]`` when per-image spectra were kept.
    """

    def __init__(self, a: "Analysis", name: str):
        rows = a.rows(name)
        self.name = a.taps[a.tap_index(name)]
        self.filters = a.filters.iloc[rows].reset_index(drop=True)
        self.mean_spectra: np.ndarray = a.mean_spectra[rows]
        self.scores: np.ndarray = a.scores[:, rows]
        self.spectra: Optional[np.ndarray] = None if a.spectra is None else a.spectra[:, rows]

    def __repr__(self) -> str:
        return f"<flickertag.Tap {self.name}: {len(self.filters)} filters>"


class Analysis:
    """A frequency-tagging analysis: tables as pandas DataFrames, arrays as numpy.

    The arrays' row axis runs over filters (each tap's channels in turn, as ``filters``);
    :meth:`to_xarray` gives them as labelled arrays.

    Attributes
    ----------
    summary : dict
        ``summary.json``: configuration as used, model, images, lines, taps, layers.
    layers : DataFrame
        ``layers.csv``: ``tap, kind, conv_ordinal, n_filters, n_important, mean_score,
        important`` (``important`` as a list of channel indices).
    filters : DataFrame
        ``filters.csv``: one row per filter (scores, pass fraction, statistics).
    lines : DataFrame
        ``lines.csv``: one row per tap and catalogued line.
    sweep : DataFrame or None
        ``sweep.csv`` (with statistics).
    crossval : DataFrame or None
        ``crossval.csv`` (with statistics, from 4 images): the important set chosen on
        one random half of the images and checked on the other, one row per split
        (``threshold`` chosen on half A, ``kappa`` the chance-corrected Jaccard index of
        A's and B's sets, ``kappa_operating`` the same at the operating threshold,
        ``spearman`` of the filter means of A and B).
    spectra : ndarray or None
        float32 ``[image, row, bin]`` amplitudes ``|rfft(x)|/N`` (None when per-image
        spectra were not kept: ``per_image=False`` or over 100 images). A row is one
        filter: the rows of ``filters`` in order, each tap's channels in turn, nothing
        padded; :meth:`rows` gives a tap's.
    coefficients : ndarray or None
        complex64 ``[image, row, bin]``, ``rfft(x)/N``.
    mean_spectra : ndarray
        float64 ``[row, bin]``, mean amplitude over images.
    scores : ndarray
        float64 ``[image, row]`` per-image scores.
    freqs_hz : ndarray
        Frequency of each bin, ``k * fps / n_frames``.
    taps : list of str
        Tap names, the ``tap`` axis.
    images : DataFrame
        ``name, index, label, class`` of each analysed image, the ``image`` axis.
    control : DataFrame or None
        ``control.csv`` (``control=`` given): per layer, the trained network's mean
        score against the (first) control network's, Cliff's delta and Mann-Whitney p.
    control_networks : DataFrame or None
        ``control_networks.csv``: per layer and for the network, each statistic of the
        trained network, the controls' mean, SD and range, its percentile among them
        and a Monte Carlo p (``controls=`` networks, default 20).
    control_calibration : DataFrame or None
        ``control_calibration.csv``: per ReLU, the share of units that never switch in
        the trained network, in the control before and after it was put at the trained
        network's operating point.
    region_swap : DataFrame or None
        ``region_swap.csv`` (``region_swap=True``): per filter, whether its preference
        follows the region or the frequency.
    bootstrap : DataFrame or None
        ``bootstrap.csv`` (``bootstrap=B``): image-bootstrap 95 % intervals.
    noise_sweep : DataFrame or None
        ``noise_sweep.csv`` (a ``noise_sigma`` list): F-test detection rate per noise
        level, tap and line.
    contrast_response : DataFrame or None
        ``contrast_response.csv`` (a ``contrast_sweep`` list of depths): per depth,
        tap, filter and tagged region, the mean amplitude and SNR at the region's tag.
    harmonic_sum : DataFrame or None
        ``harmonic_sum.csv`` (``harmonic_sum=True``, with ``noise_sigma``): per filter and
        tagged region, the baseline-corrected amplitude summed over the layer's
        significant harmonics (``bca``), the smallest Holm-adjusted p and whether it
        ``responds``.
    harmonic_sum_harmonics : DataFrame or None
        ``harmonic_sum_harmonics.csv``: per layer, region and candidate harmonic, its
        z on the layer's grand average and whether it was ``selected``.
    harmonic_sum_crossval : DataFrame or None
        ``harmonic_sum_crossval.csv`` (``harmonic_sum=True`` with per-image spectra and at
        least 4 images): per split into image halves A and B, layer and region, the
        harmonics chosen on A (``harmonics_a``, a list of k) and those B would choose,
        the filters responding on A and on B with A's harmonics and on B with its own,
        and the chance-corrected agreements ``kappa`` and ``kappa_own``; ``images_a``
        lists half A's images.
    path : str or None
        The run folder this analysis was written to (``out=``) or read from
        (:func:`load`); None for one held in memory.

    ``a["layer1.0.conv1"]`` (or ``a["#4"]``) is one tap: a :class:`Tap` with its
    filters' rows and arrays.
    """

    def __init__(self, source: Any, *, path: Optional[str] = None):
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            source = _Folder(path)
        elif not isinstance(source, (_Memory, _Files, _Folder)):
            source = _Memory(source)  # the extension's Run
        self._source = source
        self.path: Optional[str] = path
        tables = source.tables()
        self.summary: dict = json.loads(tables["summary.json"])
        for key in ("stimulus", "taps", "images", "layers"):
            if key not in self.summary:
                raise FlickertagError(f"summary.json: missing key `{key}`")
        layers = pd.read_csv(io.BytesIO(tables["layers.csv"]), dtype={"important": str}, keep_default_na=False, **_EXACT)
        layers["conv_ordinal"] = pd.to_numeric(layers["conv_ordinal"]).astype("Int64")
        layers["important"] = [[int(c) for c in s.split()] for s in layers["important"]]
        self.layers = layers
        filters = _csv(tables["filters.csv"])
        assert filters is not None
        filters["conv_ordinal"] = filters["conv_ordinal"].astype("Int64")
        self.filters = filters
        self.lines = _csv(tables["lines.csv"])
        self.sweep = _csv(tables.get("sweep.csv"))
        self.crossval = _csv(tables.get("crossval.csv"))
        self.control = _csv(tables.get("control.csv"))
        self.control_networks = _csv(tables.get("control_networks.csv"))
        self.control_calibration = _csv(tables.get("control_calibration.csv"))
        self.region_swap = _csv(tables.get("region_swap.csv"))
        self.bootstrap = _csv(tables.get("bootstrap.csv"))
        self.noise_sweep = _csv(tables.get("noise_sweep.csv"))
        self.contrast_response = _csv(tables.get("contrast_response.csv"))
        self.harmonic_sum = _csv(tables.get("harmonic_sum.csv"))
        self.harmonic_sum_harmonics = _csv(tables.get("harmonic_sum_harmonics.csv"))
        self.harmonic_sum_crossval = _lists(_csv(tables.get("harmonic_sum_crossval.csv")),
                                            ["harmonics_a", "harmonics_b", "images_a"])
        mean, scores = source.array("spectra_mean"), source.array("scores")
        if mean is None or scores is None:
            raise FlickertagError("not a complete flickertag run (no spectra_mean or scores)")
        self.mean_spectra: np.ndarray = mean
        self.scores: np.ndarray = scores
        self.spectra: Optional[np.ndarray] = source.array("spectra")
        self.coefficients: Optional[np.ndarray] = source.array("coefficients")
        cfg = self.summary["stimulus"]["config"]
        self.freqs_hz: np.ndarray = np.arange(self.mean_spectra.shape[-1]) * cfg["fps"] / cfg["n_frames"]
        self.taps: list = [t["name"] for t in self.summary["taps"]]
        counts = [int(t["shape"][0]) for t in self.summary["taps"]]
        self._first_row = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        # The tables against the summary (the arrays were checked by the library).
        if list(self.layers["tap"]) != self.taps:
            raise FlickertagError("layers.csv: its taps are not summary.json's, in order")
        if len(self.filters) != sum(counts) or list(self.filters["tap"].unique()) != [t for t, c in zip(self.taps, counts) if c]:
            raise FlickertagError(
                f"filters.csv: {len(self.filters)} rows, but summary.json's taps have {sum(counts)} channels"
            )
        self.images = pd.DataFrame(self.summary["images"], columns=["name", "index", "label", "class"])

    def __repr__(self) -> str:
        m = self.summary.get("model", {})
        n_imp = int(self.layers["n_important"].sum())
        n_f = int(self.layers["n_filters"].sum())
        where = self.path if self.path is not None else "in memory"
        return (
            f"<flickertag.Analysis {m.get('name', '?')}: {len(self.images)} images, {len(self.taps)} taps, "
            f"{n_imp} of {n_f} filters important; {where}>"
        )

    def __reduce__(self) -> Any:
        """Pickles the run folder's files (every file, byte for byte, as :meth:`save`
        writes them), so that an unpickled Analysis, in another process or on another
        machine, holds the same numbers and saves the same folder. It is held in memory
        there (``path`` is None)."""
        return (_unpickle, (self._source.files(),))

    def __getitem__(self, tap: str) -> Tap:
        """One tap by name (or ``#ordinal`` for conv taps)."""
        return Tap(self, tap)

    def tap_index(self, tap: str) -> int:
        """Position of a tap (by name, or ``#ordinal`` for conv taps) on the tap axis."""
        if tap.startswith("#"):
            rows = self.layers.index[self.layers["conv_ordinal"] == int(tap[1:])]
            if len(rows):
                return int(rows[0])
        elif tap in self.taps:
            return self.taps.index(tap)
        raise FlickertagError(f"invalid tap: one of {', '.join(self.taps)} (got {tap})")

    def rows(self, tap: str) -> slice:
        """The rows of ``tap`` on the row axis of ``mean_spectra``, ``spectra``,
        ``coefficients`` and ``scores``: ``a.mean_spectra[a.rows("layer1.0.conv1")]``
        is that tap's ``[channel, bin]``."""
        t = self.tap_index(tap)
        return slice(int(self._first_row[t]), int(self._first_row[t + 1]))

    def spectrum(self, tap: str, channel: int) -> pd.Series:
        """One filter's mean amplitude spectrum over images, indexed by frequency (Hz)."""
        t = self.tap_index(tap)
        n = int(self.layers["n_filters"].iloc[t])
        if not 0 <= channel < n:
            raise FlickertagError(f"invalid channel: 0..{n - 1} for tap {tap} (got {channel})")
        s = pd.Series(self.mean_spectra[self._first_row[t] + channel], index=pd.Index(self.freqs_hz, name="freq_hz"))
        s.name = f"{self.taps[t]}[{channel}]"
        return s

    def to_xarray(self) -> Any:
        """The spectra as an ``xarray.Dataset`` (needs ``pip install 'flickertag[xarray]'``).

        Dimensions ``image`` x ``unit`` x ``frequency``: ``mean_amplitude``
        ``[unit, frequency]`` (float64), ``score`` ``[image, unit]``, and, when per-image
        spectra were kept, ``amplitude`` ``[image, unit, frequency]`` (float32). A unit is
        one filter, in the order of ``filters``; its coordinates say which: ``tap``,
        ``channel``, ``kind`` and ``conv_ordinal`` (-1 for taps that are not convs).
        ``frequency`` is in Hz; ``image`` carries the images' ``name`` (and CIFAR-10
        ``index`` and ``label``, -1 where none). The values are the arrays of this
        object, not copies of rounded CSV text.

        >>> import flickertag
        >>> ds = flickertag.analyze("resnet32", progress=False).to_xarray()
        >>> dict(ds.sizes)
        {'unit': 1146, 'frequency': 121, 'image': 10}
        >>> float(ds.mean_amplitude.sel(frequency=6.0).where(ds.tap == "conv1", drop=True).max()) > 0
        True
        """
        try:
            import xarray as xr
        except ImportError:
            raise FlickertagError("Analysis.to_xarray needs xarray: pip install 'flickertag[xarray]'") from None
        kind_of = dict(zip(self.layers["tap"], self.layers["kind"]))
        taps = self.filters["tap"].astype(str).to_numpy()
        unit_coords = {
            "tap": ("unit", taps),
            "channel": ("unit", self.filters["channel"].to_numpy(dtype=np.int64)),
            "kind": ("unit", np.array([kind_of.get(t, "") for t in taps], dtype=object)),
            "conv_ordinal": ("unit", self.filters["conv_ordinal"].fillna(-1).to_numpy(dtype=np.int64)),
        }
        image_coords = {
            "name": ("image", self.images["name"].astype(str).to_numpy()),
            "index": ("image", pd.to_numeric(self.images["index"]).fillna(-1).to_numpy(dtype=np.int64)),
            "label": ("image", pd.to_numeric(self.images["label"]).fillna(-1).to_numpy(dtype=np.int64)),
        }
        data = {
            "mean_amplitude": (("unit", "frequency"), self.mean_spectra),
            "score": (("image", "unit"), self.scores),
        }
        if self.spectra is not None:
            data["amplitude"] = (("image", "unit", "frequency"), self.spectra)
        ds = xr.Dataset(data, coords={**unit_coords, **image_coords, "frequency": self.freqs_hz})
        ds["frequency"].attrs["units"] = "Hz"
        ds.attrs["model"] = str(self.summary.get("model", {}).get("name", ""))
        return ds

    def save(self, path: str, *, overwrite: bool = False) -> str:
        """Writes the run folder (exactly the files ``flickertag analyze --out`` writes:
        tables, arrays, figures, ``report.html``) to ``path``, atomically: it appears
        complete or not at all. A folder holding another run is replaced only with
        ``overwrite=True``; one holding other files never. Returns ``path``."""
        return self._source.save(os.fspath(path), bool(overwrite))

    def report(self, path: Optional[str] = None) -> str:
        """Writes the self-contained HTML report (figures inline) to the file ``path``
        and returns it. Without ``path``: the run folder's own ``report.html`` (an
        analysis held in memory has none: pass ``path``)."""
        if path is None:
            if self.path is None:
                raise FlickertagError(
                    "invalid path: a file to write the report to (this analysis is held in memory; "
                    "save() writes the whole run folder) (got None)"
                )
            src = os.path.join(self.path, "report.html")
            if not os.path.isfile(src):
                raise FlickertagError(f"{self.path}: no report.html (redraw it with `flickertag report {self.path}`)")
            return src
        path = os.fspath(path)
        with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
            folder = self.save(os.path.join(tmp, "run"))
            shutil.copyfile(os.path.join(folder, "report.html"), path)
        return path


def _unpickle(files: Dict[str, bytes]) -> Analysis:
    """An Analysis from pickled run-folder files, held in memory."""
    for rel in files:
        if rel.startswith("/") or ".." in rel.split("/"):
            raise FlickertagError(f"invalid pickle: a run-folder file outside the folder ({rel!r})")
    return Analysis(_Files(files))


def load(path: str) -> Analysis:
    """Reads a run folder (written by ``flickertag analyze``, ``flickertag demo`` or
    :meth:`Analysis.save`) back into an :class:`Analysis`."""
    if not os.path.isdir(path):
        raise FlickertagError(f"{path}: no such run folder")
    return Analysis(path)
