"""The ``flickertag`` console script of the wheel: the Rust command line itself.

``pip install flickertag`` puts a ``flickertag`` command on PATH that runs the same
program as a cargo build (``flickertag analyze``, ``merge``, ``report``, ``fetch-data``,
``--resume``, shards), so the README's commands and the SLURM recipe need no Rust.
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
    sys.stdout.flush()
    sys.exit(_flickertag.cli_main(["flickertag", *args]))
