# Everything from a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Set-up is idempotent: a virtual environment in .venv, Debian's graphviz for `dot`.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch's CPU build (on this machine's disk, /opt/wheels) and the torchvision release made for that
# torch: about 1 GB of environment, where PyPI's default Linux torch, a CUDA build, takes about 6 GB,
# more than a fresh machine's disk sometimes has free. Where pip finds no CPU build (none on disk,
# no https://download.pytorch.org/whl/cpu index), set-up falls back to TORCH_ANY. torchvision's
# compiled ops (nms, roi_align) are built against the CUDA build and do not load beside the CPU
# one; nothing here uses them (tests/torchvision_ops.py lets torchvision import without them).
TORCH ?= torch==2.13.0+cpu torchvision==0.28.0
TORCH_ANY ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH)' | cat - pyproject.toml | cksum | cut -d' ' -f1)
PIP := $(BIN)/pip install -q --disable-pip-version-check --no-cache-dir
OUT ?= out

.PHONY: setup system demo test bench fuzz clean

setup: system $(STAMP)

# Debian packages: graphviz for `dot`; PostgreSQL's server for the shared-study test (which starts
# a throwaway server of its own).
system:
	@command -v dot >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz postgresql >/dev/null; }

# torch and torchvision are pinned for set-up here (TORCH above; torchvision and timm give the zoo
# tests their reference models); pyproject.toml states the range cnnc supports.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) $(TORCH) "timm>=1.0,<2" || { \
		echo "set-up: $(TORCH) did not install (no CPU build found?); trying $(TORCH_ANY), several GB"; \
		$(PIP) $(TORCH_ANY) "timm>=1.0,<2"; }
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

# Fuzzing for a time budget: mutants of the zoo and generated programs through check → summary → load
# → forward; outcomes classified, failing inputs saved to $(OUT)/fuzz/bugs/. FUZZ_SECONDS=3600 for a long run.
FUZZ_SECONDS ?= 300
fuzz: setup
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS) --workers 2 --out $(OUT)/fuzz

clean:
	rm -rf $(VENV) $(OUT) runs .pytest_cache .hypothesis
