# msgr2tx developer entry points.  On a bare Debian machine (as root):
#     apt-get install -y make python3-venv && make test

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.stamp
CEPH_TOOLS := ceph-mon ceph-osd ceph rados monmaptool ceph-authtool
CEPH_PKGS  := ceph-mon ceph-osd ceph-common python3-rados

DOCS_OUT := build/docs/html
LINT_PATHS := msgr2tx twisted tests tools examples docs/conf.py

.PHONY: venv ceph-deps ceph-releases test lint docs plugins run clean

venv: $(STAMP)

# editable_mode=compat puts the repo root on sys.path through a .pth file,
# so twisted/plugins/ (a namespace dir without __init__.py) is found by twistd.
# The dev extra brings ruff, mypy, mypy-zope, sphinx and myst-parser.
$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(VENV)/bin/python -m pip install -e '.[dev]' --config-settings editable_mode=compat
	touch $@

ceph-deps:
	@missing=""; for t in $(CEPH_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then \
		echo "ceph-deps: Ceph tools present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "ceph-deps: missing:$$missing; installing $(CEPH_PKGS)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(CEPH_PKGS); \
	else \
		echo "ceph-deps: NOTE: missing:$$missing and not root; tests needing a real Ceph"; \
		echo "ceph-deps: will be SKIPPED (or FAIL when CI is set). To run them:"; \
		echo "ceph-deps:     sudo apt-get install -y $(CEPH_PKGS)"; \
	fi

# Ceph 18.2 (Reef, Debian trixie) and 20.2 (Tentacle, Debian sid) for the
# interop tests: two debootstrap chroots, built in parallel (80 s to 3 min
# from scratch) into /var/cache/msgr2tx/chroots/ and reused on later runs.  Not
# root: a note (tests on those releases skip; with CI set this fails).
ceph-releases:
	$(PYTHON) -m tests.cephlab build

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy msgr2tx

# the Sphinx site; warnings are errors
docs: venv
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs $(DOCS_OUT)

# rebuild Twisted's plugin cache (dropin.cache), e.g. after adding a plugin
plugins: venv
	$(VENV)/bin/msgr2tx-regen-plugins

test: venv ceph-deps ceph-releases lint docs
	$(VENV)/bin/python -m twisted.trial tests

# make run ARGS="--listen tcp:PORT:interface=127.0.0.1 --auth none": options for twistd msgr2
run: venv
	$(VENV)/bin/twistd -n msgr2 $(ARGS)

clean:
	rm -rf $(VENV) _trial_temp* build dist *.egg-info .mypy_cache

# Benchmarks (bench/, docs/performance.md): a few minutes, prints a table.
# BENCH_PYTHON=/path/to/python uses an existing environment instead of .venv.
BENCH_PYTHON ?=
.PHONY: bench
bench: $(if $(BENCH_PYTHON),,venv) ceph-deps
	$(or $(BENCH_PYTHON),$(VENV)/bin/python) bench/run.py
