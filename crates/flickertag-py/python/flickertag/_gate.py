"""Whether a computation that needs torch runs: the rule every optional torch extra of
the package follows (``taylor=`` of importance_truth, ``gradients=`` of cam)."""

from __future__ import annotations

import warnings
from typing import Any, Optional

from ._errors import FlickertagError

#: The models torch can rebuild here (flickertag.cifar_resnet).
PRETRAINED = ("resnet20", "resnet32", "resnet44", "resnet56")


def torch_extra(name: str, wanted: Optional[bool], model: Any, data: Optional[str], what: str) -> bool:
    """Decides the option ``name`` (``wanted``: True, False or None for the default).
    Default: on when torch is installed and ``model`` is a pretrained CIFAR ResNet name;
    without torch it is off with a warning. True without torch, with another model or
    without a data folder is an error naming the option."""
    pretrained = isinstance(model, str) and model in PRETRAINED
    try:
        import torch  # noqa: F401

        has_torch = True
    except ImportError:
        has_torch = False
    if wanted is None:
        wanted = has_torch and pretrained
        if not has_torch:
            warnings.warn(f"{name}: {what} skipped (needs torch: pip install 'flickertag[pruning]')", stacklevel=3)
    if wanted:
        if not has_torch:
            raise FlickertagError(f"invalid {name}: needs torch (pip install 'flickertag[pruning]')")
        if not pretrained:
            raise FlickertagError(
                f"invalid {name}: a pretrained CIFAR ResNet name, {', '.join(PRETRAINED)} (got {model!r})")
        if not data:
            raise FlickertagError("invalid data: the data folder (set FLICKERTAG_DATA or pass data=)")
    return bool(wanted)
