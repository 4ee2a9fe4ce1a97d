"""Frequency-tagging scores as a Torch-Pruning importance, and pruning to a MAC target.

Torch-Pruning (DepGraph, CVPR 2023) removes channels structurally: a conv's output
channel goes together with every layer coupled to it (its BatchNorm, the next conv's
input, and across a residual addition every conv that adds into the same channels).
It ranks each coupled *group* of channels by an importance; :class:`TaggingImportance`
is one built from a flickertag analysis, keyed by module path (the taps of a
``torch.nn.Module`` are named as its ``named_modules()``).

- Per group, each conv or linear layer whose output channels the group removes and
  that the analysis scored contributes its filters' scores (``criterion``, a numeric
  column of the analysis' filter table: ``mean_score`` (the paper's), ``pass_fraction``,
  ``bca_tag1``, ``bca_tag2``, ``bca_intermod``, ``integration``, ...); layers the
  analysis did not record contribute nothing.
- The contributions are reduced as Torch-Pruning reduces its own
  (``GroupMagnitudeImportance._reduce``: ``group_reduction="mean"`` by default, or
  ``"sum"``, ``"max"``, ``"prod"``, ``"first"``), then normalized (``normalizer``: None
  by default, as scores in dB can be negative; Torch-Pruning's names otherwise).
- Higher means kept. A filter whose score is NaN (a dead filter: constant output) ranks
  below every other filter of its layer.
- A group with no scored layer returns None, which Torch-Pruning's pruners skip: pass
  such layers in ``ignored_layers`` or record them (``taps="conv,linear"``).

Needs ``pip install 'flickertag[pruning]'`` (torch-pruning; torch).
"""

from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from ._errors import FlickertagError

__all__ = ["TaggingImportance", "tagging_scores", "prune_to_macs", "count_macs", "prune", "CRITERIA"]


def _tp():
    try:
        import torch_pruning as tp
    except ImportError:
        raise FlickertagError(
            "flickertag.pruning needs Torch-Pruning: pip install 'flickertag[pruning]' (or torch-pruning)"
        ) from None
    return tp


def tagging_scores(analysis: Any, criterion: str = "mean_score", tie_break: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Per tap (module path), the ``criterion`` column of ``analysis.filters`` in channel
    order: ``{tap: float64 array [channels]}``. With ``tie_break`` (another column), equal
    values are ordered by it: the column's rank over all filters, scaled into the gap
    between distinct values, is added (a column of few distinct values, such as
    ``pass_fraction``, otherwise prunes whole blocks of tied channels at once, so that a
    MAC target falls between two steps)."""
    f = analysis.filters.copy()
    if tie_break is not None:
        if tie_break not in f.columns:
            raise FlickertagError(f"invalid tie_break: a column of the filter table (got {tie_break!r})")
        vals = np.unique(f[criterion].to_numpy(dtype=np.float64)[np.isfinite(f[criterion].to_numpy(dtype=np.float64))])
        gap = np.diff(vals).min() if len(vals) > 1 else 1.0
        rank = f[tie_break].rank(method="first", na_option="bottom").to_numpy(dtype=np.float64)
        f[criterion] = f[criterion].to_numpy(dtype=np.float64) + 0.5 * gap * rank / (len(rank) + 1)
    numeric = [c for c in f.columns if c not in ("tap", "channel", "conv_ordinal") and f[c].dtype.kind in "fiu"]
    if criterion not in numeric:
        raise FlickertagError(f"invalid criterion: a numeric column of the filter table ({', '.join(numeric)}) "
                              f"(got {criterion!r})")
    out = {}
    for tap, rows in f.groupby("tap", sort=False):
        rows = rows.sort_values("channel")
        if list(rows["channel"]) != list(range(len(rows))):
            raise FlickertagError(f"invalid analysis: tap {tap} lacks channels")
        out[tap] = rows[criterion].to_numpy(dtype=np.float64)
    return out


def _make_importance():
    tp = _tp()
    import torch

    fn = tp.pruner.function

    class TaggingImportance(tp.importance.GroupMagnitudeImportance):
        """A ``tp.importance.Importance`` from per-filter scores keyed by module path.

        Parameters
        ----------
        scores : ``{module path: array [out_channels]}``, e.g. :func:`tagging_scores`.
        model : the ``torch.nn.Module`` the pruner prunes (its ``named_modules()`` give
            the paths); every key must name one of its conv or linear layers with as
            many output channels as scores.
        group_reduction, normalizer : as Torch-Pruning's ``GroupMagnitudeImportance``.
        """

        def __init__(self, scores: Mapping[str, Any], model: Any, group_reduction: str = "mean",
                     normalizer: Optional[str] = None):
            super().__init__(p=1, group_reduction=group_reduction, normalizer=normalizer)
            self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
            self.bind(model)

        @classmethod
        def from_analysis(cls, analysis: Any, model: Any, criterion: str = "mean_score", **kw: Any):
            """The importance of ``analysis``'s ``criterion`` (see :func:`tagging_scores`)."""
            return cls(tagging_scores(analysis, criterion), model, **kw)

        def bind(self, model: Any) -> "TaggingImportance":
            """Binds the scores to ``model``'s modules (after ``copy.deepcopy``, bind the
            copy); checks every key and shape. Returns self."""
            modules = dict(model.named_modules())
            bad = [k for k in self.scores if k not in modules]
            if bad:
                raise FlickertagError(f"invalid scores: module paths of the model ({', '.join(list(modules)[1:8])}, ...) "
                                      f"(got {', '.join(bad[:5])})")
            for k, v in self.scores.items():
                w = getattr(modules[k], "weight", None)
                out = None if w is None else (w.shape[1] if getattr(modules[k], "transposed", False) else w.shape[0])
                if out != len(v):
                    raise FlickertagError(f"invalid scores: {k} has {out} output channels, the scores {len(v)}")
            self._name = {m: n for n, m in modules.items() if n in self.scores}
            return self

        def layer_scores(self, name: str) -> "torch.Tensor":
            """The scores of one layer as Torch-Pruning reads them: NaN below the layer's
            lowest."""
            v = self.scores[name].copy()
            finite = np.isfinite(v)
            v[~finite] = (v[finite].min() - 1.0) if finite.any() else 0.0
            return torch.as_tensor(v, dtype=torch.float32)

        @torch.no_grad()
        def __call__(self, group: Any):
            imps, root = [], []
            for i, (dep, idxs) in enumerate(group):
                if dep.pruning_fn not in (fn.prune_conv_out_channels, fn.prune_linear_out_channels):
                    continue
                name = self._name.get(dep.layer)
                if name is None:
                    continue
                imps.append(self.layer_scores(name)[list(idxs)])
                root.append(group[i].root_idxs)
            if not imps:
                return None
            return self._normalize(self._reduce(imps, root), self.normalizer)

    return TaggingImportance


def __getattr__(name: str):
    if name == "TaggingImportance":
        cls = _make_importance()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def count_macs(model: Any, example_inputs: Any) -> Tuple[int, int]:
    """``(MACs, parameters)`` of ``model`` as Torch-Pruning counts them
    (``tp.utils.count_ops_and_params``)."""
    macs, params = _tp().utils.count_ops_and_params(model, example_inputs)
    return int(macs), int(params)


def prune_to_macs(
    model: Any,
    importance: Any,
    example_inputs: Any,
    macs_ratio: float,
    *,
    global_pruning: bool = True,
    ignored_layers: Optional[list] = None,
    tolerance: float = 0.01,
    max_steps: int = 30,
    rebind: Optional[Callable[[Any], Any]] = None,
) -> Tuple[Any, dict]:
    """Prunes a copy of ``model`` until its MACs are ``1 / macs_ratio`` of the original
    (``macs_ratio=2.11``: Torch-Pruning's ResNet-56 setting) within ``tolerance``
    (relative), by bisection on the pruner's channel ratio; every trial prunes a fresh
    copy (Torch-Pruning's ``MetaPruner``, one step). ``importance`` is bound to each copy
    (``rebind(copy)`` when given, else ``importance.bind(copy)`` for a
    :class:`TaggingImportance`, else used as is: Torch-Pruning's own importances hold no
    module references). Returns ``(pruned model, info)`` with the MACs and parameters
    before and after and the ratio reached; an error when the target cannot be reached
    within the tolerance."""
    tp = _tp()
    if not (macs_ratio > 1.0 and np.isfinite(macs_ratio)):
        raise FlickertagError(f"invalid macs_ratio: a MAC reduction factor above 1, e.g. 2.11 (got {macs_ratio!r})")
    base_macs, base_params = count_macs(model, example_inputs)
    target = base_macs / macs_ratio
    names = {m: n for n, m in model.named_modules()}
    ignored_names = [names[m] for m in (ignored_layers or [])]

    def trial(ratio: float):
        m = copy.deepcopy(model)
        mods = dict(m.named_modules())
        imp = rebind(m) if rebind else (importance.bind(m) if hasattr(importance, "bind") else importance)
        pruner = tp.pruner.MetaPruner(m, example_inputs, importance=imp, global_pruning=global_pruning,
                                      pruning_ratio=ratio, ignored_layers=[mods[n] for n in ignored_names])
        pruner.step()
        return m, count_macs(m, example_inputs)

    lo, hi, best = 0.0, 0.95, None
    for _ in range(max_steps):
        mid = (lo + hi) / 2
        m, (macs, params) = trial(mid)
        if best is None or abs(macs - target) < abs(best[1][0] - target):
            best = (m, (macs, params), mid)
        if abs(macs - target) <= tolerance * target:
            break
        if macs > target:
            lo = mid
        else:
            hi = mid
    m, (macs, params), ratio = best
    if abs(macs - target) > tolerance * target:
        raise FlickertagError(f"invalid macs_ratio: {macs_ratio} is not reachable within {tolerance:.0%} "
                              f"(closest: {base_macs / macs:.3f}x at channel ratio {ratio:.4f})")
    info = {"macs_before": base_macs, "macs_after": macs, "params_before": base_params, "params_after": params,
            "macs_ratio": base_macs / macs, "channel_ratio": ratio}
    return m, info


#: Criteria of :func:`prune`: the analysis' filter-table columns (``ft_*``) and
#: Torch-Pruning's own importances, as its benchmarks name them.
CRITERIA = {
    "ft_authors": "the paper's score (mean_score of the analysis' filter table)",
    "ft_pass_fraction": "share of images whose score passes the threshold",
    "ft_integration": "intermodulation share of the tagged response (magnitude-normalised)",
    "weight_l1": "Torch-Pruning's group L1 norm of the weights (GroupMagnitudeImportance(p=1))",
    "bn_gamma": "Torch-Pruning's group BatchNorm scale (BNScaleImportance)",
    "random": "seeded uniform scores per filter (fixed for the whole MAC search)",
}
_COLUMNS = {"ft_authors": "mean_score", "ft_pass_fraction": "pass_fraction", "ft_integration": "integration"}


def _time_forward(model: Any, x: Any, repeats: int = 7) -> float:
    """The best of `repeats` timed forwards (the least disturbed by other work on the machine)."""
    import time

    import torch

    with torch.inference_mode():
        model(x)
        t = []
        for _ in range(repeats):
            s = time.perf_counter()
            model(x)
            t.append(time.perf_counter() - s)
    return float(np.min(t))


def _report_html(info: dict, original: Dict[str, int]) -> str:
    """The prune run's self-contained report: what came out, and per conv the channels
    kept of the original as a bar (plain HTML, no plotting library)."""
    import html

    rows = [
        ("model", info["model"]), ("criterion", f"{info['criterion']} (seed {info['seed']})"),
        ("ranking", "global" if info["global_pruning"] else "per layer"),
        ("MACs", f"{info['macs_before'] / 1e6:.2f} M to {info['macs_after'] / 1e6:.2f} M "
                 f"({info['macs_ratio']:.3f}x fewer)"),
        ("parameters", f"{info['params_before']:,} to {info['params_after']:,}"),
        ("top-1 before fine-tuning", f"{info['top1_before']:.2f} % to {info['top1_after']:.2f} % "
                                     f"({info['eval_images']} test images)"),
        ("speed-up", f"{info['speedup']:.2f}x (torch, CPU, batch 256, best of 7)"),
    ]
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>flickertag prune</title>",
           "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px}td,th{padding:2px 8px;"
           "text-align:left}.bar{background:#4477aa;height:12px}.track{background:#ddd;width:300px}</style></head><body>",
           f"<h1>flickertag prune: {html.escape(str(info['model']))}</h1><table>"]
    out += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
    out.append("</table><h2>Channels kept per conv</h2><table><tr><th>conv</th><th>kept</th><th></th></tr>")
    for name, before in original.items():
        kept = info["channels"].get(name, before)
        out.append(f"<tr><td>{html.escape(name)}</td><td>{kept} of {before}</td><td><div class=\"track\">"
                   f"<div class=\"bar\" style=\"width:{100 * kept / max(before, 1):.1f}%\"></div></div></td></tr>")
    out.append(f"</table><p style=\"color:#777\">flickertag {html.escape(str(info['flickertag_version']))}, "
               f"Torch-Pruning {html.escape(str(info['torch_pruning_version']))}; files: pruned.onnx, "
               "pruned_state_dict.pt, pruned_model.pt, prune.json.</p></body></html>")
    return "\n".join(out)


def prune(
    model: Any = "resnet56",
    *,
    criterion: str = "ft_authors",
    macs_ratio: float = 2.11,
    global_pruning: bool = True,
    seed: int = 0,
    data: Optional[str] = None,
    input_shape: tuple = (3, 32, 32),
    mean: Any = None,
    std: Any = None,
    eval_limit: Optional[int] = None,
    tolerance: float = 0.01,
    out: Optional[str] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Tuple[Any, dict]:
    """Prunes ``model`` structurally to ``1 / macs_ratio`` of its MACs by ``criterion``
    and measures what came out: its MACs and parameters, top-1 accuracy on the CIFAR-10
    test set *before any fine-tuning* (``eval_limit`` images, default all 10,000), and
    the inference speed-up (torch on this machine's CPU, batch 256, best of 7).

    ``model``: ``resnet20/32/44/56`` (the pretrained CIFAR ResNets,
    :func:`flickertag.cifar_resnet.cifar_resnet`) or a ``torch.nn.Module`` (with
    ``mean``/``std``). ``criterion``: one of :data:`CRITERIA`; the ``ft_*`` criteria run a
    flickertag analysis of the model first (the paper's ten images, conv and linear
    taps). ``global_pruning``: rank channels across layers (True) or prune each layer by
    the same ratio. ``tolerance``: how close to the MAC target (relative); a coupled
    group (the ResNet stem's, shared by every block of its stage) removes up to about
    2 % of the MACs with each channel, so some targets need 0.02-0.025. The classifier's output layer is never pruned. With ``out``, writes
    ``pruned.onnx``, ``pruned_state_dict.pt``, ``pruned_model.pt`` (the whole module, for
    ``torch.load(..., weights_only=False)``), ``prune.json`` and ``report.html`` (the
    numbers, and the channels each conv kept as bars) there (a folder holding
    other files is refused; an earlier prune output is replaced only with
    ``overwrite=True``). Returns ``(pruned model, info)``."""
    import json
    import shutil
    import tempfile

    import torch

    import flickertag

    from . import cifar_resnet as cr

    tp = _tp()
    TaggingImportance = _make_importance() if "TaggingImportance" not in globals() else globals()["TaggingImportance"]
    if criterion not in CRITERIA:
        raise FlickertagError(f"invalid criterion: one of {', '.join(CRITERIA)} (got {criterion!r})")
    if isinstance(model, str):
        name, net = model, cr.cifar_resnet(model, data)
        mean, std = cr.MEAN, cr.STD
    else:
        name, net = type(model).__name__, model.eval()
        if mean is None or std is None:
            raise FlickertagError("invalid mean: a torch.nn.Module records no normalization: pass mean= and std=")
    if out is not None and os.path.exists(out):
        if set(os.listdir(out)) - {"pruned.onnx", "pruned_state_dict.pt", "pruned_model.pt", "prune.json",
                                   "report.html"}:
            raise FlickertagError(f"invalid out: a folder holding only a previous prune's files (got {out})")
        if not overwrite:
            raise FlickertagError(f"invalid out: {out} holds a previous prune: pass overwrite=True")
    x = torch.randn((1,) + tuple(input_shape))
    original = {n: m.out_channels for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    ignored = linears[-1:]
    if criterion.startswith("ft_"):
        # With the across-image statistics: the filter table's ratio columns come with them.
        a = flickertag.analyze(net, input_shape=input_shape, mean=mean, std=std, taps="conv,linear",
                               progress=progress)
        col = _COLUMNS[criterion]
        # Ties (pass_fraction takes a few values) ordered by the paper's score.
        imp = TaggingImportance(tagging_scores(a, col, tie_break=None if col == "mean_score" else "mean_score"), net)
    elif criterion == "weight_l1":
        imp = tp.importance.GroupMagnitudeImportance(p=1)
    elif criterion == "bn_gamma":
        imp = tp.importance.BNScaleImportance()
    else:
        # Fixed seeded scores (not RandomImportance's fresh draw per call), so that every
        # trial of the MAC search ranks the channels the same way.
        rng = np.random.default_rng(seed)
        layers = [(n, m) for n, m in net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        imp = TaggingImportance({n: rng.random(m.weight.shape[0]) for n, m in layers}, net)
    pruned, info = prune_to_macs(net, imp, x, macs_ratio, global_pruning=global_pruning, ignored_layers=ignored,
                                 tolerance=tolerance)
    ev = lambda m: flickertag.evaluate(m, data=data, limit=eval_limit, input_shape=input_shape, mean=mean, std=std)
    before, after = ev(net), ev(pruned)
    xb = torch.randn((256,) + tuple(input_shape))
    t0, t1 = _time_forward(net, xb), _time_forward(pruned, xb)
    info.update({
        "model": name, "criterion": criterion, "global_pruning": global_pruning, "seed": seed,
        "top1_before": before["top1"], "top1_after": after["top1"], "eval_images": after["n"],
        "per_class_after": list(after["per_class"]), "speedup": t0 / t1,
        "forward_seconds": {"before": t0, "after": t1, "batch": 256, "threads": torch.get_num_threads()},
        "channels": {n: m.out_channels for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv2d)},
        "flickertag_version": flickertag.__version__, "torch_pruning_version": tp.__version__,
    })
    if out is not None:
        tmp = tempfile.mkdtemp(prefix=".prune-", dir=os.path.dirname(os.path.abspath(out)))
        try:
            from ._torch import export_module

            shutil.move(export_module(pruned, input_shape, tmp), os.path.join(tmp, "pruned.onnx"))
            torch.save(pruned.state_dict(), os.path.join(tmp, "pruned_state_dict.pt"))
            torch.save(pruned, os.path.join(tmp, "pruned_model.pt"))
            with open(os.path.join(tmp, "prune.json"), "w") as f:
                json.dump(info, f, indent=1)
            with open(os.path.join(tmp, "report.html"), "w") as f:
                f.write(_report_html(info, original))
            if os.path.exists(out):
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return pruned, info
