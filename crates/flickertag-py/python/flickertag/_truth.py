"""What a high score predicts, from Python: :func:`importance_truth` and its result,
:class:`ImportanceTruth`. The ablations, the criteria and the correlations run in the
Rust library (``flickertag importance-truth``); this module adds the Taylor criterion
where torch is installed."""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from . import _flickertag
from ._errors import FlickertagError
from ._gate import torch_extra

#: The CIFAR-10 test set's records: a label byte, then 3 x 32 x 32 bytes.
_RECORD = 1 + 3 * 32 * 32


class ImportanceTruth:
    """The result of :func:`importance_truth`: tables as pandas DataFrames.

    Attributes
    ----------
    filters : DataFrame
        ``importance_truth.csv``: one row per ablated filter, ``layer, conv_ordinal,
        filter, delta_loss`` (mean cross-entropy change, nats, ablated − intact),
        ``delta_top1`` (accuracy points lost), then every criterion's score.
    correlations : DataFrame
        ``importance_correlation.csv``: per ``scope`` (a layer, or ``all`` pooled),
        ``criterion`` and ``truth``, Spearman's ``rho`` with its 95 % BCa interval over
        images (``ci_low``, ``ci_high``) and ``n_filters``; ``criterion ==
        "reliability"`` rows give the truth's split-half reliability (Spearman-Brown).
    summary : dict
        ``importance_truth.json``: settings (the three image sets), timing, the intact
        network's accuracy and loss; under ``"crossval"`` the cross-validated ablation
        whole (each split's B images and sets).
    crossval : DataFrame or None
        ``crossval_ablation.csv`` (with ``crossval_splits``): one row per split and chosen
        layer, ``split, threshold`` (chosen on half A), ``layer, conv_ordinal, channels,
        set_size`` (A's important filters of the layer), ``delta_loss`` (the loss change
        on half B's images with the set ablated, nats), ``random_mean, random_sd`` (the
        same for random sets of its size from the layer), ``z``, ``p_value`` (Monte Carlo,
        "more damaging than random") and ``set`` (the filters, space-separated); NaN
        where the set is empty or the whole layer. None when not run.
    path : str or None
        The run folder written (``out=``), else None.
    """

    def __init__(self, tables: dict, text: str, path: Optional[str]):
        read = lambda name: pd.read_csv(io.BytesIO(tables[name]))
        self.filters: pd.DataFrame = read("importance_truth.csv")
        self.correlations: pd.DataFrame = read("importance_correlation.csv")
        self.summary: dict = json.loads(tables["importance_truth.json"])
        self.crossval: Optional[pd.DataFrame] = (
            read("crossval_ablation.csv") if "crossval_ablation.csv" in tables else None
        )
        self.path = path
        self._text = text

    def rho(self, truth: str = "delta_loss") -> pd.DataFrame:
        """Spearman's rho with ``truth`` as a criterion x scope table."""
        t = self.correlations[self.correlations["truth"] == truth]
        return t.pivot(index="criterion", columns="scope", values="rho").loc[list(dict.fromkeys(t["criterion"]))]

    def __repr__(self) -> str:
        return self._text


def _cifar_test(data: str, indices: List[int]):
    """Images ``[n, 3, 32, 32]`` in [0, 1] and labels of CIFAR-10 test images."""
    path = os.path.join(data, "cifar10", "test_batch.bin")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size != 10000 * _RECORD:
        raise FlickertagError(f"invalid data: {path} is not the CIFAR-10 test set ({raw.size} bytes)")
    rec = raw.reshape(10000, _RECORD)[np.asarray(indices)]
    return rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, rec[:, 0].astype(np.int64)


def taylor_scores(net: Any, layers: List[str], data: str, indices: List[int], mean: Any, std: Any,
                  batch: int = 100) -> Dict[str, List[float]]:
    """Molchanov et al.'s first-order Taylor criterion (ICLR 2017) of the convs
    ``layers`` of the torch module ``net``: per filter, the mean over the CIFAR-10 test
    images ``indices`` of ``|mean over positions of a · ∂L/∂a|``, with ``a`` the channel
    after its BatchNorm (the module named as the conv with ``conv`` → ``bn`` when it is
    a ``BatchNorm2d``, else the conv's output) and ``L`` the cross-entropy. The first
    order change of the loss when the channel is zeroed is ``−Σ a · ∂L/∂a``; at the
    BatchNorm output it equals the same sum after a ReLU that reads it."""
    import torch

    modules = dict(net.named_modules())
    points = {}
    for name in layers:
        if name not in modules or not isinstance(modules[name], torch.nn.Conv2d):
            raise FlickertagError(f"invalid layers: conv modules of the network (got {name!r})")
        bn = name.rsplit("conv", 1)[0] + "bn" + name.rsplit("conv", 1)[1] if "conv" in name else None
        points[name] = modules[bn] if bn in modules and isinstance(modules[bn], torch.nn.BatchNorm2d) else modules[name]
    sums = {name: None for name in layers}
    saved: Dict[str, Any] = {}
    hooks = []
    for name, m in points.items():
        def keep(_m, _inp, out, name=name):
            out.retain_grad()
            saved[name] = out
        hooks.append(m.register_forward_hook(keep))
    m_ = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s_ = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    net = net.eval()
    try:
        for start in range(0, len(indices), batch):
            x, y = _cifar_test(data, indices[start:start + batch])
            x = (torch.from_numpy(x) - m_) / s_
            net.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(x), torch.from_numpy(y), reduction="sum")
            loss.backward()
            for name in layers:
                a = saved[name]
                per = (a * a.grad).mean(dim=(2, 3)).abs().sum(dim=0).detach().double().numpy()
                sums[name] = per if sums[name] is None else sums[name] + per
    finally:
        for h in hooks:
            h.remove()
    return {name: (v / len(indices)).tolist() for name, v in sums.items()}


def importance_truth(
    model: Any = "resnet32",
    *,
    out: Optional[str] = None,
    data: Optional[str] = None,
    taylor: Optional[bool] = None,
    progress: bool = True,
    overwrite: bool = False,
    **options: Any,
) -> ImportanceTruth:
    """What a high score predicts: every filter of the chosen conv layers ablated alone
    on held-out CIFAR-10 test images (the ground truth: the change of the cross-entropy
    and of the accuracy), and every criterion's Spearman correlation with it.

    Parameters
    ----------
    model : a pretrained CIFAR ResNet name (``resnet20/32/44/56``), an ONNX or checkpoint
        path of a CIFAR-10 model.
    out : path, optional
        A run folder to write (tables and ``plots/importance_truth.png``).
    data : the data folder (CIFAR-10); default ``FLICKERTAG_DATA``.
    taylor : add the Taylor criterion (activation x gradient, through torch). Default:
        when torch is installed and ``model`` is a pretrained CIFAR ResNet name; True
        without torch or with another model is an error; without torch and by default
        it is skipped with a warning.
    **options : every option of ``flickertag importance-truth``, named as its flag with
        ``_`` for ``-``: ``n_images`` (1000), ``seed``, ``statistics_images`` (1000: the
        last of the test set), ``analysis_images``, ``layers`` (tap names or
        ``"#ordinal"``; default every conv), ``ablation`` (``"zero"`` or ``"mean"``),
        ``bootstrap`` (1000), ``bootstrap_seed``, ``crossval_splits`` (0: off; the
        cross-validated ablation of the tagging-selected sets on halves of the
        ``analysis_images``, at least 4), ``crossval_random`` (20), ``threads``,
        ``batch``.

    Returns
    -------
    ImportanceTruth

    Examples
    --------
    >>> t = flickertag.importance_truth("resnet20", layers=["layer1.1.conv1"], n_images=2000)
    >>> t.rho()
    """
    from . import _options_json

    if isinstance(options.get("layers"), str):
        options["layers"] = [k.strip() for k in options["layers"].split(",")]
    if options.get("threads") is None:
        options.pop("threads", None)
    if "extra" in options:
        raise FlickertagError("invalid extra: set by importance_truth itself (taylor=)")
    d = data or os.environ.get("FLICKERTAG_DATA")
    if torch_extra("taylor", taylor, model, d, "the Taylor criterion"):
        import torch

        from . import cifar_resnet as cr

        net = cr.cifar_resnet(model, d)
        convs = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d) and ".shortcut" not in n]
        layers = options.get("layers") or []
        chosen = [convs[int(k[1:]) - 1] if k.startswith("#") and k[1:].isdigit() and 0 < int(k[1:]) <= len(convs)
                  else k for k in layers] or convs
        n_stats = int(options.get("statistics_images", 1000))
        stats = list(range(10000 - n_stats, 10000))
        options["extra"] = [{"name": "taylor", "scores": taylor_scores(net, chosen, d, stats, cr.MEAN, cr.STD)}]
    tables, text, folder = _flickertag.importance_truth(
        os.fspath(model),
        None if out is None else os.fspath(out),
        _options_json(dict(options)),
        data=None if d is None else os.fspath(d),
        progress=bool(progress),
        overwrite=bool(overwrite),
    )
    return ImportanceTruth(dict(tables), text, None if folder is None else os.fspath(folder))


__all__ = ["importance_truth", "ImportanceTruth", "taylor_scores", "FlickertagError"]
