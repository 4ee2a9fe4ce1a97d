# freqtag: the two commands a newcomer needs are `make demo` and `make test`.
# Both fetch the ONNX Runtime shared library (pinned PyPI wheel) into .cache/ first.

CARGO ?= cargo
ORT_LIB := .cache/onnxruntime/1.31.1/libonnxruntime.so
export ORT_DYLIB_PATH ?= $(CURDIR)/$(ORT_LIB)
# Tests run in their crate's folder: a relative data folder is made absolute here.
ifdef FREQTAG_DATA
export FREQTAG_DATA := $(abspath $(FREQTAG_DATA))
endif

.PHONY: setup demo test lint bench build

setup: $(ORT_LIB)

$(ORT_LIB):
	scripts/fetch-ort.sh

build: setup
	$(CARGO) build --release

# The main job: the paper's experiment end to end (or a labelled pipeline demo without data).
demo: build
	./target/release/freqtag demo --out runs/demo

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p freqtag -p freqtag-cli
	$(CARGO) check -p freqtag-cli --features cuda
	$(CARGO) tree -p freqtag -e normal --prefix none | scripts/check-lib-deps.sh

test: setup lint
	$(CARGO) test --release

# Not part of `make test`: freqtag vs PyTorch hooks vs onnxruntime-python (installs torch into .venv).
bench: build
	./target/release/freqtag bench --model resnet32 --batch 80 --threads 2
	bench/run.sh
