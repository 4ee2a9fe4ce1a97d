"""The ``flickertag`` console script of the wheel: the Rust command line itself.

``pip install flickertag`` puts a ``flickertag`` command on PATH that runs the same
program as a cargo build (``flickertag analyze``, ``merge``, ``report``, ``fetch-data``,
``--resume``, shards), so the README's commands and the SLURM recipe need no Rust.
``flickertag prune`` runs here, in Python: it needs torch and Torch-Pruning
(``pip install 'flickertag[pruning]'``).
"""

from __future__ import annotations

import signal
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    """Runs ``flickertag`` with ``argv`` (default: the process's arguments) and exits
    with its status."""
    # Behave as the native program: Ctrl-C and a closed pipe end the process at once
    # (Python would otherwise hold SIGINT until the Rust call returns).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    from . import _flickertag  # importing the package chose the onnxruntime wheel's library

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["prune"]:
        sys.exit(prune_main(args[1:]))
    sys.stdout.flush()
    sys.exit(_flickertag.cli_main(["flickertag", *args]))


def prune_main(argv: List[str]) -> int:
    """``flickertag prune``: :func:`flickertag.pruning.prune` from the command line."""
    import argparse
    import json

    from .pruning import CRITERIA, prune

    p = argparse.ArgumentParser(
        prog="flickertag prune",
        description="Prune a network structurally (Torch-Pruning) to 1/MACS_RATIO of its MACs by a criterion; "
        "write the pruned network and its MACs, parameters, accuracy before fine-tuning and speed-up.",
        epilog="Examples:\n  flickertag prune --model resnet56 --criterion ft_authors --out runs/r56-ft\n"
        "  flickertag prune --model resnet56 --criterion weight_l1 --macs-ratio 2.11 --out runs/r56-l1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", "-m", default="resnet56", help="resnet20, resnet32, resnet44 or resnet56 (default resnet56)")
    p.add_argument("--criterion", default="ft_authors", choices=list(CRITERIA), help="what ranks the channels")
    p.add_argument("--macs-ratio", type=float, default=2.11, help="MACs before / after (default 2.11, Torch-Pruning's ResNet-56)")
    p.add_argument("--per-layer", action="store_true", help="prune every layer by the same ratio (default: global ranking)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random criterion")
    p.add_argument("--data", help="data folder (default FLICKERTAG_DATA)")
    p.add_argument("--eval-limit", type=int, help="test images for the accuracy (default all 10,000)")
    p.add_argument("--out", "-o", required=True, help="folder for pruned.onnx, pruned_state_dict.pt, pruned_model.pt, prune.json, report.html")
    p.add_argument("--force", action="store_true", help="replace a previous prune's output")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print prune.json on stdout")
    a = p.parse_args(argv)
    from ._errors import FlickertagError

    try:
        _, info = prune(a.model, criterion=a.criterion, macs_ratio=a.macs_ratio, global_pruning=not a.per_layer,
                        seed=a.seed, data=a.data, eval_limit=a.eval_limit, out=a.out, overwrite=a.force,
                        progress=not a.quiet)
    except FlickertagError as e:
        print(f"error: {e}".replace("overwrite=True", "--force"), file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(info))
    elif not a.quiet:
        print(f"{info['model']} pruned by {info['criterion']}: MACs {info['macs_before'] / 1e6:.2f} M -> "
              f"{info['macs_after'] / 1e6:.2f} M ({info['macs_ratio']:.3f}x), parameters {info['params_before']:,} -> "
              f"{info['params_after']:,}; top-1 before fine-tuning {info['top1_before']:.2f} % -> {info['top1_after']:.2f} % "
              f"({info['eval_images']} test images); forward {info['speedup']:.2f}x faster (torch, CPU, batch 256, best of 7)",
              file=sys.stderr)
        print(f"written: {a.out}", file=sys.stderr)
    return 0
