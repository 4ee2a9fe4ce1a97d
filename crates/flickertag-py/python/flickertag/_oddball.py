"""The oddball paradigm from Python: :func:`oddball` and its result, :class:`Oddball`."""

from __future__ import annotations

import io
import json
import os
from typing import Any, Optional

import pandas as pd

from . import _flickertag
from ._errors import FlickertagError


class Oddball:
    """The result of :func:`oddball`: tables as pandas DataFrames.

    Attributes
    ----------
    filters : DataFrame
        ``oddball.csv``: one row per filter and oddball class, ``tap, channel, class,
        response, noise_sd, z`` (``response``: the amplitude summed over the layer's
        significant oddball harmonics less its noise level; ``z`` NaN where no harmonic
        is significant or the sum is at the float32 rounding floor). The class
        ``"(none)"`` is the null control: streams with no oddball category.
    layers : DataFrame
        ``oddball_layers.csv``: per layer and class, ``filters``, ``selective``
        (z > 2.32), ``mean_z``, ``harmonics`` (how many are significant).
    harmonics : DataFrame
        ``oddball_harmonics.csv``: per layer, class and candidate harmonic, its
        ``bin``, ``freq`` (Hz), ``z`` and whether it is ``significant``.
    validation : DataFrame or None
        ``oddball_validation.csv`` (``validate=True``): per class, the recall drop when
        its top filters are ablated against layer-matched random sets, with a 95 %
        bootstrap interval and a Monte Carlo p.
    summary : dict
        ``oddball.json``: the settings, timing, model and per-layer counts.
    path : str or None
        The run folder written (``out=``), else None.
    """

    def __init__(self, tables: dict, text: str, path: Optional[str]):
        read = lambda name: pd.read_csv(io.BytesIO(tables[name])) if name in tables else None
        self.filters: pd.DataFrame = read("oddball.csv")
        self.layers: pd.DataFrame = read("oddball_layers.csv")
        self.harmonics: pd.DataFrame = read("oddball_harmonics.csv")
        self.validation: Optional[pd.DataFrame] = read("oddball_validation.csv")
        self.summary: dict = json.loads(tables["oddball.json"])
        self.path = path
        self._text = text

    @property
    def selectivity(self) -> pd.DataFrame:
        """The filter x class table of z: index ``(tap, channel)`` in the network's
        order, one column per oddball class."""
        t = self.filters.pivot(index=["tap", "channel"], columns="class", values="z")
        order = list(dict.fromkeys(self.filters["tap"]))
        t = t.reindex(pd.MultiIndex.from_frame(self.filters[["tap", "channel"]].drop_duplicates()))
        return t[list(dict.fromkeys(self.filters["class"]))].loc[order]

    def __repr__(self) -> str:
        return self._text


def oddball(
    model: Any = "resnet32",
    *,
    out: Optional[str] = None,
    data: Optional[str] = None,
    input_shape: Optional[tuple] = None,
    progress: bool = True,
    overwrite: bool = False,
    **options: Any,
) -> Oddball:
    """Category selectivity by the oddball paradigm of fast periodic visual stimulation.

    For each class, ``streams`` seeded streams of images at ``base_freq`` F (one
    sinusoidal contrast cycle per image) with every ``every``-th image from that class
    and the others from every other class; a filter that tells the class apart
    responds at F/n and its harmonics. A null control (``"(none)"``: oddballs from
    every class) measures the false-positive rate on the same network.

    Parameters
    ----------
    model : a pretrained name, an ONNX or checkpoint path, or a ``torch.nn.Module``
        (with ``input_shape``).
    out : path, optional
        A run folder to write (tables, figures, ``report.html``).
    data : the data folder (CIFAR-10); default ``FLICKERTAG_DATA``.
    **options : every option of ``flickertag oddball``, named as its flag with ``_``
        for ``-``: ``base_freq`` (6), ``every`` (5), ``fps`` (120), ``n_frames`` (400),
        ``classes`` (names or indices), ``streams`` (10), ``seed``, ``harmonics``,
        ``neighbours``, ``pool_images`` (100), ``image_folder`` (one subfolder per
        class instead of CIFAR-10), ``taps`` (``"conv"``), ``tap``, ``validate``,
        ``fraction`` (0.1), ``random_sets`` (100), ``validation_images`` (1000),
        ``threads``, ``batch``, ``mean``, ``std``.

    Returns
    -------
    Oddball

    Examples
    --------
    >>> o = flickertag.oddball("resnet32", classes=["cat", "dog"], streams=4, progress=False)
    >>> o.selectivity.loc["layer3.4.conv2"].head()
    """
    import tempfile

    from . import _model_arg, _options_json

    if isinstance(options.get("taps"), str):
        options["taps"] = [k.strip() for k in options["taps"].split(",")]
    if isinstance(options.get("classes"), (str, int)):
        options["classes"] = [options["classes"]]
    if "classes" in options:
        options["classes"] = [str(c) for c in options["classes"]]
    for k in ("mean", "std"):
        if k in options and options[k] is not None and not isinstance(options[k], (list, tuple)):
            options[k] = [float(options[k])]
    if options.get("image_folder") is not None:
        options["image_folder"] = os.fspath(options["image_folder"])
    if options.get("threads") is None:
        options.pop("threads", None)
    with tempfile.TemporaryDirectory(prefix="flickertag-") as tmp:
        spec = _model_arg(model, input_shape, tmp)
        tables, text, folder = _flickertag.oddball(
            spec,
            None if out is None else os.fspath(out),
            _options_json(dict(options)),
            data=None if data is None else os.fspath(data),
            progress=bool(progress),
            overwrite=bool(overwrite),
        )
    return Oddball(dict(tables), text, None if folder is None else os.fspath(folder))


__all__ = ["oddball", "Oddball", "FlickertagError"]
