# memlens: `make demo` installs everything and runs the main job; `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.memlens-installed
DEB_PACKAGES := dataset-fashion-mnist fortunes fortunes-min
DEMO_OUT ?= runs/demo

# One BLAS/OpenMP thread per process: parallelism comes from the model axis (see docs/architecture.md).
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: all setup deb demo test test-all docs bench bench-quick clean

all: demo

setup: $(STAMP)

# Debian data packages (Fashion-MNIST, fortunes); installed only when missing.
deb:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian data packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	  || echo "warning: could not install$$missing; loaders needing them will say so"; \
	fi

$(STAMP): pyproject.toml Makefile
	$(MAKE) deb
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'
	# ISLP ships the Caravan data; its own dependencies (statsmodels, lifelines, ...) are not needed.
	$(PIP) install -q --no-deps ISLP
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/memlens audit --dataset digits --model logreg --models 256 --out $(DEMO_OUT) --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

# The documentation site, offline: figures drawn by memlens, then MkDocs (Material, mkdocstrings) into site/.
docs: $(STAMP)
	$(PY) docs/gen_figures.py --gallery
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(PY) benchmarks/torch_module.py
	$(PY) benchmarks/run.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --quick

clean:
	rm -rf $(VENV) runs build site docs/generated *.egg-info src/*.egg-info
