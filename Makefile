# flickertag: the two commands a newcomer needs are `make demo` and `make test`.
# Both fetch the ONNX Runtime shared library (pinned PyPI wheel) into .cache/ first.

SHELL := /bin/bash
CARGO ?= cargo
ORT_LIB := .cache/onnxruntime/1.31.1/libonnxruntime.so
export ORT_DYLIB_PATH ?= $(CURDIR)/$(ORT_LIB)
# Tests run in their crate's folder: a relative data folder is made absolute here.
ifdef FLICKERTAG_DATA
export FLICKERTAG_DATA := $(abspath $(FLICKERTAG_DATA))
endif

PY := .venv/bin/python
# What the Python package and its tests need. torch and torch-pruning are optional for
# users (extras `torch` and `pruning`, with onnx for torch.onnx); the tests need them as
# oracles (PyPI's torch brings its CUDA libraries: about
# 3.5 GB, 105 s to install on this machine from a cold cache).
PY_DEPS := "maturin>=1.9,<2" "ziglang>=0.13,<0.18" auditwheel numpy pandas "onnxruntime==1.31.1" pytest matplotlib "ray>=2.9" xarray mypy
TEST_DEPS := torch "torch-pruning>=1.5" onnx

.PHONY: setup demo test lint audit fuzz bench build python pytest stubs

setup: $(ORT_LIB)

$(ORT_LIB):
	scripts/fetch-ort.sh

build: setup
	$(CARGO) build --release

# The main job: the paper's experiment end to end (or a labelled pipeline demo without data).
demo: build
	./target/release/flickertag demo --out runs/demo --force

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --no-deps -p flickertag --features report
	$(CARGO) tree -p flickertag -e normal --prefix none | scripts/check-lib-deps.sh
	scripts/check-module-cycles.py --self-test >/dev/null
	scripts/check-module-cycles.py
	command -v cargo-deny >/dev/null || $(CARGO) install --quiet --locked cargo-deny --version 0.20.2
	$(CARGO) deny --offline check bans licenses sources

# Known vulnerabilities and unmaintained crates (deny.toml): needs the RustSec database,
# fetched from GitHub once (`cargo deny fetch` where GitHub can be reached), so not in CI.
audit:
	$(CARGO) deny --offline check advisories

# Coverage-guided fuzzing of every reader (nightly Rust and cargo-fuzz; 30 minutes a
# target by default): see scripts/fuzz.sh. Its corpora are replayed by `make test`.
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install --quiet --locked cargo-fuzz --version 0.13.2
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Tests that need the data folder are `#[ignore = "needs the data folder"]`: with
# FLICKERTAG_DATA set they run too (--include-ignored); without it cargo lists them as
# ignored, never as passed. The log is kept for .ci/run, which fails on any ignored test.
RUST_TEST_ARGS := $(if $(FLICKERTAG_DATA),-- --include-ignored)
test: setup lint
	set -o pipefail; $(CARGO) test --release $(RUST_TEST_ARGS) 2>&1 | tee target/cargo-test.log
	$(MAKE) pytest

$(PY):
	python3 -m venv .venv

# Builds the abi3 wheel for manylinux2014 (glibc 2.17: RHEL/Rocky 7-9, Ubuntu 18.04+) with
# maturin and zig (both from PyPI) and installs it into .venv. Nothing is repaired or
# bundled (`auditwheel show` checks the tag), so it can run any number of times; the
# wheel holds the Python package, the extension and the `flickertag` command.
python: $(PY)
	$(PY) -m pip install --quiet $(PY_DEPS)
	rm -f target/wheels/flickertag-*.whl
	PATH="$(CURDIR)/.venv/bin:$$PATH" maturin build --release --quiet --zig --compatibility manylinux2014 -o target/wheels
	$(PY) -m auditwheel show target/wheels/flickertag-*manylinux*.whl | tr '\n' ' ' | grep -q '"manylinux_2_17_x86_64"'
	$(PY) -m pip install --quiet --force-reinstall --no-deps target/wheels/flickertag-*manylinux*.whl

# The extension's type stubs, generated from its Rust signatures (pyo3-stub-gen).
STUB := crates/flickertag-py/python/flickertag/_flickertag.pyi
stubs:
	$(CARGO) run --release --quiet -p flickertag-py --bin stub_gen

# The Python API tests, against the CLI that `cargo test --release` built. The wheel
# must find ONNX Runtime through its onnxruntime dependency, so ORT_DYLIB_PATH is unset.
# First the committed stubs must be what the generator writes now.
pytest: python
	$(PY) -m pip install --quiet $(TEST_DEPS)
	mkdir -p target && cp $(STUB) target/stub.committed
	$(MAKE) --no-print-directory stubs
	cmp -s $(STUB) target/stub.committed || { echo "$(STUB) was out of date: it is regenerated now, commit it"; exit 1; }
	env -u ORT_DYLIB_PATH FLICKERTAG_BIN=$(CURDIR)/target/release/flickertag $(PY) -m pytest -q -rs --durations=8 crates/flickertag-py/tests

# Not part of `make test`: flickertag vs PyTorch hooks vs onnxruntime-python (installs torch into .venv).
bench: build
	./target/release/flickertag bench --model resnet32 --batch 80 --threads 2
	bench/run.sh
