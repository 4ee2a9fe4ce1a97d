"""The PEP 517 build backend of flickertag: maturin's, behind a toolchain check.

A source install (``pip install .``, ``pip install flickertag-<v>.tar.gz``, or pip
falling back to the sdist where no wheel fits) compiles Rust. maturin's own backend,
finding no ``cargo``, silently downloads a Rust toolchain (about 1.1 GB) and builds for
a quarter of an hour. This wrapper stops at once instead, saying what to install, and
tells maturin never to fetch a toolchain itself (``MATURIN_NO_INSTALL_RUST``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, Mapping, Optional

# The oldest Rust that builds flickertag (the workspace's `rust-version`).
MIN_RUST = (1, 89)


class RustToolchainMissing(RuntimeError):
    """No usable Rust toolchain for a source build."""


def _advice() -> str:
    return (
        "Install Rust with rustup (https://rustup.rs: "
        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), open a new shell "
        "and run pip again; or install a prebuilt wheel instead: "
        "pip install --only-binary flickertag flickertag. Nothing was downloaded."
    )


def check_toolchain() -> str:
    """The path of a ``cargo`` new enough to build flickertag; raises
    :class:`RustToolchainMissing` (with what to install) otherwise."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise RustToolchainMissing(
            "flickertag: building from source needs a Rust toolchain "
            f"(cargo {MIN_RUST[0]}.{MIN_RUST[1]} or newer) and none is on PATH. " + _advice()
        )
    try:
        r = subprocess.run([cargo, "--version"], capture_output=True, text=True, timeout=60)
        out = r.stdout if r.returncode == 0 else (r.stdout + r.stderr)
    except (OSError, subprocess.SubprocessError) as e:
        raise RustToolchainMissing(f"flickertag: {cargo} --version failed ({e}). " + _advice()) from e
    m = re.search(r"cargo (\d+)\.(\d+)", out)
    if m is None or (int(m.group(1)), int(m.group(2))) < MIN_RUST:
        raise RustToolchainMissing(
            f"flickertag: building from source needs cargo {MIN_RUST[0]}.{MIN_RUST[1]} or newer; "
            f"`{cargo} --version` says {out.strip()[:500] or 'nothing'}. Update it with `rustup update`, or "
            "install a prebuilt wheel: pip install --only-binary flickertag flickertag."
        )
    return cargo


def _maturin() -> Any:
    check_toolchain()
    os.environ["MATURIN_NO_INSTALL_RUST"] = "1"
    import maturin

    return maturin


def get_requires_for_build_wheel(config_settings: Optional[Mapping[str, Any]] = None) -> list:
    return _maturin().get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings: Optional[Mapping[str, Any]] = None) -> list:
    return _maturin().get_requires_for_build_sdist(config_settings)


def get_requires_for_build_editable(config_settings: Optional[Mapping[str, Any]] = None) -> list:
    return _maturin().get_requires_for_build_wheel(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    return _maturin().prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    return _maturin().build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str,
    config_settings: Optional[Mapping[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    return _maturin().build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    return _maturin().build_sdist(sdist_directory, config_settings)
