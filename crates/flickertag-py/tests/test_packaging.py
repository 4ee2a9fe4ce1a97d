"""The distribution as a researcher gets it: the wheel alone in a fresh virtual
environment (its ``flickertag`` command, the SLURM recipe, beside PyPI's ``freq-tag``),
the sdist and ``pip install .`` built from source, the licence notices in both, and a
source build without Rust stopping at once.

These tests install from PyPI (the wheel's dependencies, ``freq-tag``, maturin for the
source builds), as CI may. The wheel is the one ``make python`` built
(``target/wheels``); source builds share the workspace's ``target`` folder, so only the
flickertag crates compile again.
"""

import glob
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
BSD = "BSD 2-Clause License"


def wheel():
    found = glob.glob(os.path.join(ROOT, "target/wheels/flickertag-*manylinux*.whl"))
    assert len(found) == 1, f"make python builds exactly one wheel into target/wheels (found {found})"
    return found[0]


def sh(*args, env=None, cwd=None, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd)
    if check:
        assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def venv(path):
    """A fresh virtual environment (no site packages of ours); returns (python, bin)."""
    sh(sys.executable, "-m", "venv", path)
    py = os.path.join(path, "bin", "python")
    return py, os.path.join(path, "bin")


def clean_env(bin_dir, home):
    """The environment of a new shell with the venv active: no ORT_DYLIB_PATH (the wheel
    must find onnxruntime's library itself), no FLICKERTAG_* settings, an empty home."""
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DYLIB_PATH", "FLICKERTAG_BIN", "FLICKERTAG_DATA", "PYTHONPATH")}
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
    return env


def test_the_wheel_alone_gives_the_command_and_installs_beside_freq_tag(tmp_path):
    w = wheel()
    with zipfile.ZipFile(w) as z:
        names = z.namelist()
        notice = [n for n in names if n.endswith("NOTICE.md")]
        assert notice and BSD in z.read(notice[0]).decode(), "the embedded weights' licence is in the wheel"
        assert any(n.endswith("licenses/LICENSE-MIT") for n in names) and any(n.endswith("licenses/LICENSE-APACHE") for n in names)
        entry = z.read([n for n in names if n.endswith("entry_points.txt")][0]).decode().replace(" ", "")
        assert "flickertag=flickertag._cli:main" in entry, entry
        assert not any(".libs/" in n for n in names), "no bundled system libraries"
    assert "manylinux_2_17_x86_64" in os.path.basename(w) and "abi3" in os.path.basename(w)
    py, bin_dir = venv(tmp_path / "env")
    sh(py, "-m", "pip", "install", "--quiet", w)
    # PyPI's freq-tag (2021) installs an import package named `freqtag`: the reason for the
    # rename. Both in one environment, each importable as itself. (--no-deps: its import
    # needs nothing, and its mne/scipy requirements are not what is tested.)
    sh(py, "-m", "pip", "install", "--quiet", "--no-deps", "freq-tag==0.0.1")
    env = clean_env(bin_dir, tmp_path)
    r = sh(py, "-c", "import flickertag, freqtag; print(flickertag.__version__, freqtag.__version__, freqtag.foo(), flickertag.analyze.__module__)", env=env)
    version, fq, foo, mod = r.stdout.split()
    assert (fq, foo, mod) == ("0.0.1", "foo", "flickertag") and version.count(".") == 2
    # The command is on PATH and is the Rust CLI.
    r = sh("flickertag", "--version", env=env)
    assert r.stdout.strip() == f"flickertag {version}"
    r = sh("flickertag", "nonsense", env=env, check=False)
    assert r.returncode == 2 and "unrecognized subcommand" in r.stderr
    sh("flickertag", "analyze", "--model", "resnet32", "--out", tmp_path / "run", "--threads", "2", "--quiet", env=env)
    assert os.path.isfile(tmp_path / "run" / "report.html")
    r = sh(py, "-m", "flickertag", "providers", env=env)
    assert "CPUExecutionProvider" in r.stdout
    # The SLURM recipe as written (FLICKERTAG unset: the `flickertag` on PATH).
    array = open(os.path.join(ROOT, "examples/slurm/analyze-array.sbatch")).read()
    merge = open(os.path.join(ROOT, "examples/slurm/merge.sbatch")).read()
    renv = {**env, "N": "2", "RUN": str(tmp_path / "full"), "PARTS": str(tmp_path / "parts")}
    for i in range(2):
        sh("bash", "-c", array, env={**renv, "SLURM_ARRAY_TASK_ID": str(i)})
    r = sh("bash", "-c", merge, env=renv)
    assert not glob.glob(str(tmp_path / "**" / "*flickertag-lock"), recursive=True), "no lock files left"
    r = sh(py, "-c", f"import flickertag; a = flickertag.load({str(tmp_path / 'full')!r}); print(len(a.images))", env=env)
    assert r.stdout.strip() == "10"


def test_a_source_build_without_rust_stops_at_once_saying_what_to_install(tmp_path):
    backend = os.path.join(ROOT, "crates/flickertag-py/build_backend")
    env = {k: v for k, v in os.environ.items()}
    env["PATH"] = "/usr/bin:/bin"  # no ~/.cargo/bin
    if any(os.path.exists(os.path.join(d, "cargo")) for d in ("/usr/bin", "/bin")):
        pytest.fail("this machine has a system cargo in /usr/bin: the test needs a PATH without one")
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import flickertag_build as b\n"
        "for hook in (b.get_requires_for_build_wheel, lambda: b.build_wheel(%r), lambda: b.build_sdist(%r)):\n"
        "    try:\n"
        "        hook()\n"
        "    except b.RustToolchainMissing as e:\n"
        "        print(e)\n"
        "    else:\n"
        "        print('NO ERROR')\n"
    ) % (backend, str(tmp_path), str(tmp_path))
    r = sh(sys.executable, "-c", code, env=env, cwd=ROOT)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all("needs a Rust toolchain" in l and "https://rustup.rs" in l for l in lines), r.stdout
    assert all("--only-binary flickertag" in l and "Nothing was downloaded" in l for l in lines)
    assert os.listdir(tmp_path) == [], "nothing built or fetched"


def test_sdist_and_repository_root_install_from_source_and_run_the_papers_experiment(tmp_path):
    sh(os.path.join(ROOT, ".venv", "bin", "maturin"), "sdist", "-o", tmp_path / "sdist", cwd=ROOT)
    (sdist,) = glob.glob(str(tmp_path / "sdist" / "flickertag-*.tar.gz"))
    with tarfile.open(sdist) as t:
        names = t.getnames()
        notice = [n for n in names if n.endswith("crates/flickertag/assets/NOTICE.md")]
        assert notice and BSD in t.extractfile(notice[0]).read().decode(), "the weights' licence is in the sdist"
        for f in ("LICENSE-MIT", "LICENSE-APACHE", "CITATION.cff", "pyproject.toml", "crates/flickertag-py/build_backend/flickertag_build.py", "crates/flickertag/assets/resnet32-cifar10.th"):
            assert any(n.endswith("/" + f) for n in names), f"{f} missing from the sdist"
    py, bin_dir = venv(tmp_path / "env")
    env = clean_env(bin_dir, tmp_path)
    # The user's Rust toolchain (rustup finds it from the real home), and the compiled
    # dependencies of the workspace's release build, reused.
    env.update(
        HOME=os.environ["HOME"],
        CARGO_TARGET_DIR=os.path.join(ROOT, "target"),
        PATH=env["PATH"] + os.pathsep + os.path.expanduser("~/.cargo/bin"),
    )
    try:
        sh(py, "-m", "pip", "install", "--quiet", sdist, env=env)
    finally:
        # maturin leaves a copy of the wheel it built for pip in the shared target/wheels.
        for w in glob.glob(os.path.join(ROOT, "target/wheels/flickertag-*.whl")):
            if "manylinux" not in w:
                os.remove(w)
    paper = (
        "import flickertag\n"
        "a = flickertag.analyze('resnet32', threads=2, progress=False)\n"
        "print(len(a.images), int(a.layers['n_important'].sum()), a.summary['model']['source'] == flickertag._flickertag.embedded_source())\n"
    )
    from_sdist = sh(py, "-c", paper, env=env).stdout.split()
    assert from_sdist[0] == "10" and from_sdist[2] == "True", from_sdist
    r = sh(bin_dir + "/flickertag", "--version", env=env)
    assert r.stdout.startswith("flickertag ")
    # `pip install .` at the repository root.
    try:
        sh(py, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", ROOT, env=env)
    finally:
        for w in glob.glob(os.path.join(ROOT, "target/wheels/flickertag-*.whl")):
            if "manylinux" not in w:
                os.remove(w)
    from_root = sh(py, "-c", paper, env=env).stdout.split()
    assert from_root == from_sdist
