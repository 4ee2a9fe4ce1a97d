"""Class activation maps from tagging-selected channels, from Python: :func:`cam` and
its result, :class:`Cam`. The localisation set, Score-CAM, Ablation-CAM, EigenCAM and
every metric run in the Rust library (``flickertag cam``); this module adds Grad-CAM
and Grad-CAM++ through torch where it is installed, as channel weights per case that
the library combines and scores like its own."""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from . import _flickertag
from ._errors import FlickertagError
from ._gate import torch_extra


class Cam:
    """The result of :func:`cam`: tables as pandas DataFrames.

    Attributes
    ----------
    cases : DataFrame
        ``cam_cases.csv``: per case, the object (``image``, ``label``, ``class``), its
        box's top-left corner (``x``, ``y``; the box is 32 x 32), the background images,
        whether the network names the object on the canvas (``correct``) and the
        object class's softmax ``probability``.
    metrics : DataFrame
        ``cam_metrics.csv``: per ``case``, ``method`` and ``set`` (``all``, ``tagging``,
        ``random``, ``bottom``): ``energy``, ``pointing``, ``insertion``, ``deletion``.
    comparison : DataFrame
        ``cam_comparison.csv``: per method, set, ``against`` (``all``, the control; or
        ``random``, for ``tagging``) and metric, the two sets' means (``mean``,
        ``control``), their mean paired ``difference`` with its 95 % BCa interval over
        cases and a ``verdict`` (``better``, ``worse``, ``no difference shown``).
    channels : DataFrame
        ``cam_channels.csv``: each channel's tagging score and the sets it is in.
    weights : DataFrame
        ``cam_weights.csv``: for the first ``keep_maps`` cases, each method's weight of
        every channel (EigenCAM has none).
    summary : dict
        ``cam.json``: settings, layer, sets, the network's accuracy on the canvases, timing.
    path : str or None
        The run folder written (``out=``), else None.
    """

    def __init__(self, tables: dict, text: str, path: Optional[str]):
        read = lambda name: pd.read_csv(io.BytesIO(tables[name]))
        self.cases: pd.DataFrame = read("cam_cases.csv")
        self.metrics: pd.DataFrame = read("cam_metrics.csv")
        self.comparison: pd.DataFrame = read("cam_comparison.csv")
        self.channels: pd.DataFrame = read("cam_channels.csv")
        self.weights: pd.DataFrame = read("cam_weights.csv")
        self.summary: dict = json.loads(tables["cam.json"])
        self.path = path
        self._text = text

    def verdicts(self, set: str = "tagging", against: str = "all") -> pd.DataFrame:
        """The verdicts of ``set`` against ``against`` (``all``, or ``random`` for
        ``tagging``) as a method x metric table."""
        t = self.comparison[(self.comparison["set"] == set) & (self.comparison["against"] == against)]
        return t.pivot(index="method", columns="metric", values="verdict").loc[list(dict.fromkeys(t["method"]))]

    def __repr__(self) -> str:
        return self._text


def canvases(model: Any = "resnet32", *, data: Optional[str] = None,
             **options: Any) -> Tuple[str, pd.DataFrame, np.ndarray]:
    """What :func:`cam` with these options evaluates: the layer (its tap name), the
    localisation cases (``image, label, x, y, background``) and their canvases
    (float32 ``[n, 3, S, S]`` in [0, 1], before the model's normalisation)."""
    from . import _options_json

    d = data or os.environ.get("FLICKERTAG_DATA")
    text, pixels = _flickertag.cam_canvases(os.fspath(model), _options_json(_clean(dict(options))),
                                            data=None if d is None else os.fspath(d))
    parsed = json.loads(text)
    return parsed["layer"], pd.DataFrame(parsed["cases"]), pixels


def _clean(options: Dict[str, Any]) -> Dict[str, Any]:
    for key in ("methods", "analysis_images"):
        if isinstance(options.get(key), str):
            options[key] = [k.strip() for k in options[key].split(",") if k.strip()]
    if options.get("threads") is None:
        options.pop("threads", None)
    return options


def _layer_module(net: Any, layer: str) -> Any:
    """The module of ``net`` whose output is the tap ``layer``: the module of that name,
    or for a CIFAR ResNet block's final ReLU (``layerX.Y.relu2``, functional in the
    torch code) the block itself."""
    modules = dict(net.named_modules())
    if layer in modules:
        return modules[layer]
    block = layer.rsplit(".", 1)[0]
    if layer.endswith(".relu2") and block in modules:
        return modules[block]
    raise FlickertagError(
        f"invalid layer: a tap the torch module outputs (a module name, or a block's relu2) for gradients=True "
        f"(got {layer!r}); gradients=False runs the gradient-free methods alone")


def gradient_weights(net: Any, layer: str, inputs: np.ndarray, labels: List[int],
                     batch: int = 50) -> Dict[str, List[List[float]]]:
    """Grad-CAM and Grad-CAM++ channel weights of the tap ``layer`` of the torch module
    ``net`` for normalised ``inputs`` ``[n, C, H, W]`` and target classes ``labels``.

    Grad-CAM (Selvaraju et al., ICCV 2017): ``w_k`` = the mean over positions of
    ``∂y_c/∂A_k``, with ``y_c`` the target's logit. Grad-CAM++ (Chattopadhay et al.,
    WACV 2018), as pytorch-grad-cam computes it: ``w_k = Σ_ij α_ij ReLU(g_ij)`` with
    ``α = g² / (2 g² + Σ_ab A_ab · g³)`` (0 where ``g = 0``). The map of a channel set
    ``S`` is ``ReLU(Σ_{k∈S} w_k A_k)``, as for the library's methods."""
    import torch

    module = _layer_module(net, layer)
    saved: Dict[str, Any] = {}

    def keep(_m, _inp, out):
        out.retain_grad()
        saved["a"] = out

    hook = module.register_forward_hook(keep)
    grad_cam: List[List[float]] = []
    grad_cam_pp: List[List[float]] = []
    net = net.eval()
    try:
        for start in range(0, len(inputs), batch):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch]))
            y = torch.tensor(labels[start:start + batch])
            net.zero_grad(set_to_none=True)
            logits = net(x)
            logits.gather(1, y[:, None]).sum().backward()
            a = saved["a"].detach().double()
            g = saved["a"].grad.double()
            grad_cam.extend(g.mean(dim=(2, 3)).tolist())
            g2, g3 = g ** 2, g ** 3
            alpha = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3 + 1e-7)
            alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
            grad_cam_pp.extend((alpha * g.clamp(min=0)).sum(dim=(2, 3)).tolist())
    finally:
        hook.remove()
    return {"grad-cam": grad_cam, "grad-cam++": grad_cam_pp}


def cam(
    model: Any = "resnet32",
    *,
    out: Optional[str] = None,
    data: Optional[str] = None,
    gradients: Optional[bool] = None,
    progress: bool = True,
    overwrite: bool = False,
    **options: Any,
) -> Cam:
    """Class activation maps from channels chosen by frequency tagging, against the same
    layer without it, on a localisation set with known boxes.

    Each method's map of the chosen layer is made from four channel sets: ``all`` (the
    control), ``tagging`` (the top ``k`` by a tagging score), ``random`` (``k`` drawn
    afresh per case) and ``bottom`` (the lowest ``k``); each is scored by energy in the
    box, the pointing game, insertion and deletion AUC, and compared with ``all`` case
    by case (paired bootstrap).

    Parameters
    ----------
    model : a pretrained CIFAR ResNet name (``resnet20/32/44/56``), an ONNX or checkpoint
        path of a CIFAR-10 model that runs on larger inputs (fully convolutional).
    out : path, optional
        A run folder to write (tables, ``plots/cam_grid.png``, ``report.html``).
    data : the data folder (CIFAR-10); default ``FLICKERTAG_DATA``.
    gradients : add Grad-CAM and Grad-CAM++ (through torch). Default: when torch is
        installed and ``model`` is a pretrained CIFAR ResNet name; True without torch or
        with another model is an error; without torch and by default they are skipped
        with a warning.
    **options : every option of ``flickertag cam``, named as its flag with ``_`` for
        ``-``: ``layer`` (default the deepest map of at least 2 x 2), ``n_cases``
        (1000), ``canvas`` (64), ``background`` (``"mosaic"`` or ``"upscaled"``),
        ``seed``, ``k`` (0: a quarter of the channels), ``criterion`` (``"ft_authors"``,
        ``"ft_bca"``, ``"ft_t2"``), ``methods`` (``score-cam``, ``ablation-cam``,
        ``eigencam``), ``steps`` (16), ``analysis_images``, ``bootstrap`` (1000),
        ``bootstrap_seed``, ``keep_maps``, ``threads``, ``batch``.

    Returns
    -------
    Cam

    Examples
    --------
    >>> c = flickertag.cam("resnet20", n_cases=200)
    >>> c.verdicts("tagging")
    """
    from . import _options_json

    options = _clean(dict(options))
    if "extra" in options:
        raise FlickertagError("invalid extra: set by cam itself (gradients=)")
    d = data or os.environ.get("FLICKERTAG_DATA")
    if torch_extra("gradients", gradients, model, d, "Grad-CAM and Grad-CAM++"):
        from . import cifar_resnet as cr

        layer, cases, pixels = canvases(model, data=d, **options)
        mean = np.asarray(cr.MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(cr.STD, dtype=np.float32).reshape(1, 3, 1, 1)
        w = gradient_weights(cr.cifar_resnet(model, d), layer, (pixels - mean) / std, cases["label"].tolist())
        options["extra"] = [{"name": k, "weights": v} for k, v in w.items()]
    tables, text, folder = _flickertag.cam(
        os.fspath(model),
        None if out is None else os.fspath(out),
        _options_json(options),
        data=None if d is None else os.fspath(d),
        progress=bool(progress),
        overwrite=bool(overwrite),
    )
    return Cam(dict(tables), text, None if folder is None else os.fspath(folder))


__all__ = ["cam", "Cam", "canvases", "gradient_weights", "FlickertagError"]
