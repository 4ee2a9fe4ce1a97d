"""Type stubs of the Rust extension ``flickertag._flickertag`` (src/lib.rs). Kept in
step with it by ``test_the_extension_stub_matches_the_extension`` (names, parameters,
defaults)."""

import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

_Path = Union[str, "os.PathLike[str]"]

__version__: str

def set_ort_library(path: _Path) -> bool: ...
def ort_library() -> Optional[Path]: ...
class Run:
    """A finished run held in memory."""

    def tables(self) -> Dict[str, bytes]: ...
    def array(self, name: str) -> Optional[np.ndarray]: ...
    def save(self, path: _Path, overwrite: bool = False) -> Path: ...
    def summary(self) -> str: ...

def analyze(
    model: str,
    out: Optional[_Path] = None,
    options: str = "{}",
    selection: str = "{}",
    data: Optional[_Path] = None,
    pixels: Optional[bytes] = None,
    shape: Optional[Tuple[int, int, int, int]] = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Tuple[Optional[Run], Optional[Path]]: ...
def check(
    model: str,
    options: str = "{}",
    selection: str = "{}",
    data: Optional[_Path] = None,
    pixels: Optional[bytes] = None,
    shape: Optional[Tuple[int, int, int, int]] = None,
) -> str: ...
def merge(parts: Sequence[_Path], out: _Path, force: bool = False) -> Path: ...
def taps(model: str, data: Optional[_Path] = None) -> str: ...
def evaluate(
    model: str,
    data: Optional[_Path] = None,
    limit: Optional[int] = None,
    threads: int = 0,
    batch: int = 100,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    resize: Optional[int] = None,
    crop: Optional[int] = None,
) -> str: ...
def notice() -> str: ...
def embedded_source() -> str: ...
def check_run_folder(path: _Path) -> None: ...
def copy_run_folder(src: _Path, dest: _Path, force: bool = False) -> Path: ...
def cli_main(argv: Sequence[str]) -> int: ...
def providers() -> str: ...
def default_options() -> str: ...
