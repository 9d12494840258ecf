# Everything from a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Set-up is idempotent: a virtual environment in .venv, Debian's graphviz for `dot`.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.14.1 with torchvision 0.29.1, PyPI's builds: the pair whose torchvision loads its compiled
# ops (nms, roi_align) beside its torch, so that `import torch, torchvision, timm, onnxruntime` all
# work in one environment with no op declared by hand (tests/test_environment.py). PyPI's x86_64
# torch is a CUDA build, which runs on the CPU too: .venv takes about 6 GB, 3.2 GB of it CUDA's
# libraries. torch's CPU build (2.13.0+cpu, 1.6 GB) is no longer used: PyPI's torchvision does not
# load its ops beside it. `make TORCH="..."` picks another pair.
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH)' | cat - pyproject.toml setup.py | cksum | cut -d' ' -f1)
PIP := $(BIN)/pip install -q --disable-pip-version-check --no-cache-dir
OUT ?= out

.PHONY: setup system demo test bench fuzz clean

setup: system $(STAMP)

# Debian packages: graphviz for `dot`; PostgreSQL's server for the shared-study test (which starts
# a throwaway server of its own).
system:
	@command -v dot >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz postgresql >/dev/null; }

# torch and torchvision are pinned for set-up here (TORCH above); pyproject.toml states the range
# cnnc supports, and its `dev` extra brings the test tools with torchvision and timm (the zoo tests'
# reference models).
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) $(TORCH)
	$(PIP) -e ".[dev,postgres,onnx]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: setup
	$(BIN)/cnnc summary resnet50 --depth 0
	$(BIN)/cnnc compile resnet50 -o $(OUT)/resnet50.py
	$(BIN)/cnnc render resnet50 --depth 1 -o $(OUT)/resnet50.svg
	$(BIN)/cnnc search zoo/spaces/tiny.cnn --trials 6 --data digits --epochs 2 --out $(OUT)/search
	@echo "written: $(OUT)/resnet50.py, $(OUT)/resnet50.svg, $(OUT)/search/ (best.cnn, trials.csv, plots)"

test: setup
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

# Side-by-side ratio tables (a few minutes on 2 cores); BENCHMARKS.md records the latest figures.
bench: setup
	$(PIP) -e ".[bench]"
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/lowering.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/latency.py

# Fuzzing for a time budget: mutants of the zoo and generated programs through check → summary → load
# → forward; outcomes classified, failing inputs saved to $(OUT)/fuzz/bugs/. FUZZ_SECONDS=3600 for a long run.
FUZZ_SECONDS ?= 300
fuzz: setup
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS) --workers 2 --out $(OUT)/fuzz

clean:
	rm -rf $(VENV) $(OUT) runs .pytest_cache .hypothesis
