"""The result of an analysis, read from (and backed by) its run folder."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Optional

import numpy as np
import pandas as pd

from ._errors import FlickertagError

#: Files every run folder holds; `load` refuses a folder without them.
REQUIRED = ("summary.json", "layers.csv", "filters.csv", "lines.csv", "spectra_mean.npy", "scores.npy")


def _npy(path: str) -> Optional[np.ndarray]:
    return np.load(path) if os.path.isfile(path) else None


def _csv(path: str) -> Optional[pd.DataFrame]:
    return pd.read_csv(path) if os.path.isfile(path) else None


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
        score against the control network's, Cliff's delta and Mann-Whitney p.
    region_swap : DataFrame or None
        ``region_swap.csv`` (``region_swap=True``): per filter, whether its preference
        follows the region or the frequency.
    bootstrap : DataFrame or None
        ``bootstrap.csv`` (``bootstrap=B``): image-bootstrap 95 % intervals.
    noise_sweep : DataFrame or None
        ``noise_sweep.csv`` (a ``noise_sigma`` list): F-test detection rate per noise
        level, tap and line.
    path : str
        The run folder behind this object.

    ``a["layer1.0.conv1"]`` (or ``a["#4"]``) is one tap: a :class:`Tap` with its
    filters' rows and arrays.
    """

    def __init__(self, path: str):
        missing = [f for f in REQUIRED if not os.path.isfile(os.path.join(path, f))]
        if missing:
            raise FlickertagError(f"{path}: not a complete flickertag run folder (missing {', '.join(missing)})")
        self.path = os.fspath(path)
        self._tmp: Any = None
        with open(os.path.join(path, "summary.json")) as f:
            self.summary: dict = json.load(f)
        for key in ("stimulus", "taps", "images", "layers"):
            if key not in self.summary:
                raise FlickertagError(f"{path}/summary.json: missing key `{key}`")
        self.layers = pd.read_csv(os.path.join(path, "layers.csv"), dtype={"important": str}, keep_default_na=False)
        self.layers["conv_ordinal"] = pd.to_numeric(self.layers["conv_ordinal"]).astype("Int64")
        self.layers["important"] = [[int(c) for c in s.split()] for s in self.layers["important"]]
        self.filters = pd.read_csv(os.path.join(path, "filters.csv"))
        self.filters["conv_ordinal"] = self.filters["conv_ordinal"].astype("Int64")
        self.lines = pd.read_csv(os.path.join(path, "lines.csv"))
        self.sweep = _csv(os.path.join(path, "sweep.csv"))
        self.control = _csv(os.path.join(path, "control.csv"))
        self.region_swap = _csv(os.path.join(path, "region_swap.csv"))
        self.bootstrap = _csv(os.path.join(path, "bootstrap.csv"))
        self.noise_sweep = _csv(os.path.join(path, "noise_sweep.csv"))
        self.mean_spectra: np.ndarray = np.load(os.path.join(path, "spectra_mean.npy"))
        self.scores: np.ndarray = np.load(os.path.join(path, "scores.npy"))
        self.spectra = _npy(os.path.join(path, "spectra.npy"))
        self.coefficients = _npy(os.path.join(path, "coefficients.npy"))
        cfg = self.summary["stimulus"]["config"]
        self.freqs_hz: np.ndarray = np.arange(self.mean_spectra.shape[-1]) * cfg["fps"] / cfg["n_frames"]
        self.taps: list = [t["name"] for t in self.summary["taps"]]
        counts = [int(t["shape"][0]) for t in self.summary["taps"]]
        self._first_row = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        self.images = pd.DataFrame(self.summary["images"], columns=["name", "index", "label", "class"])

    def __repr__(self) -> str:
        m = self.summary.get("model", {})
        n_imp = int(self.layers["n_important"].sum())
        n_f = int(self.layers["n_filters"].sum())
        return (
            f"<flickertag.Analysis {m.get('name', '?')}: {len(self.images)} images, {len(self.taps)} taps, "
            f"{n_imp} of {n_f} filters important; {self.path}>"
        )

    def __reduce__(self) -> Any:
        """Pickles the run folder itself (every file, byte for byte), so that an unpickled
        Analysis, in another process or on another machine, holds the same numbers and
        still saves the same folder (it lives in a temporary folder there)."""
        files = {}
        for root, _, names in os.walk(self.path):
            for n in names:
                full = os.path.join(root, n)
                rel = os.path.relpath(full, self.path)
                if rel.startswith(".flickertag-") and rel != ".flickertag-run":
                    continue  # locks and checkpoints are not part of the run
                with open(full, "rb") as f:
                    files[rel] = f.read()
        return (_unpickle, (files,))

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
        """Writes the run folder (exactly the files ``flickertag analyze --out`` writes) to
        ``path``, atomically: it appears complete or not at all. A folder holding another
        run is replaced only with ``overwrite=True``; one holding other files never."""
        from ._flickertag import copy_run_folder

        path = os.fspath(path)
        if os.path.abspath(path) == os.path.abspath(self.path):
            return path
        return os.fspath(copy_run_folder(self.path, path, force=overwrite))

    def report(self, path: Optional[str] = None) -> str:
        """The self-contained HTML report; copied to ``path`` when given. Returns its path."""
        src = os.path.join(self.path, "report.html")
        if not os.path.isfile(src):
            raise FlickertagError(f"{self.path}: no report.html (redraw it with `flickertag report {self.path}`)")
        if path is None:
            return src
        shutil.copyfile(src, path)
        return os.fspath(path)


def _unpickle(files: dict) -> Analysis:
    """An Analysis from pickled run-folder files, written into a temporary folder that
    lives as long as the object."""
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="flickertag-")
    root = os.path.join(tmp.name, "run")
    for rel, data in files.items():
        full = os.path.normpath(os.path.join(root, rel))
        if not full.startswith(root + os.sep):
            raise FlickertagError(f"invalid pickle: a run-folder file outside the folder ({rel!r})")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    a = Analysis(root)
    a._tmp = tmp
    return a


def load(path: str) -> Analysis:
    """Reads a run folder (written by ``flickertag analyze``, ``flickertag demo`` or
    :meth:`Analysis.save`) back into an :class:`Analysis`."""
    if not os.path.isdir(path):
        raise FlickertagError(f"{path}: no such run folder")
    return Analysis(path)
