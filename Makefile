# Two commands on a fresh machine with Python 3.11, 3.12 or 3.13:
#   make lab    create .venv if needed, install, register the kernel, open lecture 00 in JupyterLab
#   make test   create/update .venv and .venv-oldest, then ruff, `course build --check` and the
#               test suite in both; it ends with a time table per layer (below)
# PYTHON: python3.11 when there is one (the test machine's CPU torch wheel is for 3.11; with
# another Python, pip takes torch from PyPI, a CUDA build on Linux: gigabytes), else the
# newest python3.13 / python3.12 / python3 that is at least 3.11. `make test PYTHON=...` picks.
ifndef PYTHON
PYTHON := $(shell for p in python3.11 python3.13 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && \
	{ echo $$p; break; }; done)
endif
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The exact versions `make` installs and tests; pyproject.toml holds the supported ranges.
CONSTRAINTS := constraints.txt
# Every Jupyter server of the venv saves notebooks without dead widgets (course_utils/lab.py).
JUPYTER_CONFIG := $(VENV)/etc/jupyter/jupyter_server_config.json
# Test layers are pytest markers (pyproject.toml, conftest.py): unit (unmarked), notebook,
# class_batch, sandbox, mutation, browser. Each notebook runs once per environment: the
# lectures in .venv-oldest's kernel test (ipywidgets 7) and in make e2e's browser (.venv,
# ipywidgets 8); the solutions and exercises self-graded in .venv-oldest and, with each
# set's planted mistakes, in one sandboxed class per set in .venv.
# Two pytest workers on the 2-core machine; a test's xdist_group stays on one worker, and
# the long poles are handed out first (conftest.py). The 15 slowest tests are listed at the
# end (each test has a time limit: pyproject.toml).
PYTEST_ARGS ?= -n 2 --dist loadgroup --no-loadscope-reorder --durations=15

.PHONY: lab test check test-oldest compat build lint install clean sandbox-tools mutation gpu

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: no Python 3.11 or newer found; install one, or run make PYTHON=/path/to/python3"; exit 1; }
	@echo "Creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e '.[lab,test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 \
		--display-name "Python 3 (ipykernel)"  # = course_utils.build.KERNELSPEC
	mkdir -p $(dir $(JUPYTER_CONFIG))
	printf '%s\n' '{"ContentsManager": {"pre_save_hook": "course_utils.lab.pre_save_hook"}}' \
		> $(JUPYTER_CONFIG)
	touch $(STAMP)

install: $(STAMP)

# Jupyter refuses to run as root unless told; containers often run as root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

# Opens lecture 00; Jupyter prints its URL, with the token, when it starts.
LAB_START ?= lectures/00_foundations.ipynb
lab: $(STAMP)
	@echo "Opening the course at $(LAB_START); the URL to open is printed below."
	$(BIN)/jupyter lab $(LAB_ARGS) --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/$(LAB_START)

build: $(STAMP)
	$(BIN)/course build

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The quick loop while editing: lint, formatting, stale notebooks, and the unit layer: no
# notebook, no sandbox, nothing long (at most 2 minutes; make test runs every layer).
UNIT := not (notebook or class_batch or sandbox or mutation)
check: lint
	$(BIN)/course build --check
	COURSE_TEST_RUN=check $(BIN)/python -m pytest $(PYTEST_ARGS) -m "$(UNIT)" tests

# Class grading's sandbox is bubblewrap (Debian's bubblewrap); as root it is installed when
# missing, as make e2e installs chromium.
sandbox-tools:
	@command -v bwrap >/dev/null || if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bubblewrap; \
	else echo "make test needs bubblewrap for class grading: sudo apt-get install bubblewrap"; \
		exit 1; fi

# .venv: every layer but the notebook one; .venv-oldest: every layer but the per-set classes
# and the mutants (grading logic, not versions).
test: $(STAMP) sandbox-tools lint
	$(BIN)/course build --check
	COURSE_TEST_RUN=venv $(BIN)/python -m pytest $(PYTEST_ARGS) -m "not notebook" tests
	$(MAKE) test-oldest
	$(BIN)/python tools/test_times.py venv oldest

# The oldest supported numpy / matplotlib / ipywidgets / ipykernel (constraints-oldest.txt,
# Colab's) over the pinned rest, in a venv of their own, reinstalled only when a
# constraint changes: the unit layer, every lecture (the widget kernel test, on ipywidgets
# 7), every solution and exercise self-graded, and the class-grading fixtures and attacks.
OLDEST_VENV := .venv-oldest
OLDEST_STAMP := $(OLDEST_VENV)/.installed
OLDEST_FREED := numpy|matplotlib|ipywidgets|ipykernel|widgetsnbextension|jupyterlab_widgets
$(OLDEST_STAMP): pyproject.toml $(CONSTRAINTS) constraints-oldest.txt
	test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	grep -v -i -E '^($(OLDEST_FREED))==' $(CONSTRAINTS) | cat - constraints-oldest.txt \
		> $(OLDEST_VENV)/constraints.txt
	$(OLDEST_VENV)/bin/python -m pip install -q -c $(OLDEST_VENV)/constraints.txt -e '.[test]'
	$(OLDEST_VENV)/bin/python -m pip list 2>/dev/null | grep -i -E '^(torch|$(OLDEST_FREED)) '
	touch $@

test-oldest: $(OLDEST_STAMP) sandbox-tools
	COURSE_TEST_RUN=oldest $(OLDEST_VENV)/bin/python -m pytest $(PYTEST_ARGS) \
		-m "not (class_batch or mutation)" tests

# Colab-like environments (newest torch from PyPI, numpy 2.0, matplotlib 3.10, ipywidgets
# 7.7.1, ipykernel 6) on each Python, the course installed by its own Colab setup cell from
# this clone's HEAD, then every lecture, solution and `course grade`: tools/compat.py. It
# downloads gigabytes (PyPI's Linux torch is a CUDA build), so it is not in `make test`.
# With pyenv: PYENV_VERSION=3.12.1:3.13.0 make compat
COMPAT_PYTHONS ?= python3.12 python3.13
compat: $(STAMP)
	$(BIN)/python tools/compat.py $(COMPAT_PYTHONS)

clean:
	rm -rf $(VENV) $(OLDEST_VENV) *.egg-info build

# Browser tests: every lecture in JupyterLab in Debian's chromium, driven by Playwright (which
# never downloads a browser here). As root, the chromium package is installed when missing.
CHROMIUM := /usr/bin/chromium
.PHONY: e2e

e2e: $(STAMP)
	@test -x $(CHROMIUM) || if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else echo "make e2e needs $(CHROMIUM): install Debian's chromium (sudo apt-get install chromium)"; \
		exit 1; fi
	COURSE_TEST_RUN=e2e $(BIN)/python -m pytest -n 2 -v e2e
	$(BIN)/python tools/test_times.py venv oldest e2e

# How strong the graded tests are: every graded function's mutants through the
# function-level grading path, per set killed / survived / equivalent (tools/mutation.py;
# about a CPU minute; make test runs it too, as the mutation layer).
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py

# Every lecture and solution on CUDA, one line per notebook (tools/gpu.py); needs a GPU,
# so not in CI.
gpu: $(STAMP)
	$(BIN)/python tools/gpu.py
