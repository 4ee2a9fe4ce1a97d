"""A torch.nn.Module as a model file: exported to ONNX with torch itself."""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

from ._errors import FlickertagError


def export_module(module: Any, input_shape: Optional[tuple], folder: str) -> str:
    """Exports `module` (eval mode, batch axis dynamic) to `folder/model.onnx` with
    torch's TorchScript-based exporter (``dynamo=False``), whose node names carry the
    modules' ``named_modules()`` paths, and returns the path.

    Nothing is folded: in its default ``TrainingMode.EVAL`` the exporter folds each
    BatchNorm into the conv before it, so that the conv's tap would hold the
    BatchNorm's output and the BatchNorm would vanish. ``TrainingMode.PRESERVE`` on the
    module in eval mode keeps both, as inference-mode nodes: ``conv1`` is what a forward
    hook on ``conv1`` sees, ``bn1`` what one on ``bn1`` sees.

    `input_shape` is ``(C, H, W)``; default ``(3, 32, 32)``.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - only without torch
        raise FlickertagError("invalid model: a torch.nn.Module needs torch installed (pip install torch)") from None
    if not isinstance(module, torch.nn.Module):
        raise FlickertagError(f"invalid model: a torch.nn.Module (got {type(module).__name__})")
    shape = tuple(int(d) for d in (input_shape or (3, 32, 32)))
    if len(shape) != 3 or min(shape) <= 0:
        raise FlickertagError(f"invalid input_shape: (C, H, W) with positive sizes (got {input_shape})")
    path = os.path.join(folder, f"{type(module).__name__}.onnx")
    was_training = module.training
    module.eval()
    try:
        x = torch.zeros((1,) + shape)
        kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
        with warnings.catch_warnings():
            # torch deprecates this exporter; its node scopes are what names the taps.
            warnings.simplefilter("ignore", DeprecationWarning)
            _export(torch, module, x, path, kwargs)
    except Exception as e:  # torch's own message says what it could not trace
        raise FlickertagError(f"invalid model: torch.onnx.export failed: {e}") from None
    finally:
        module.train(was_training)
    return path


def _export(torch: Any, module: Any, x: Any, path: str, kwargs: dict) -> None:
    torch.onnx.export(
        module,
        (x,),
        path,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=17,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False,
        **kwargs,
    )
