# Two commands on a fresh machine with Python 3.11, 3.12 or 3.13:
#   make lab    create .venv if needed, install, register the kernel, open lecture 00 in JupyterLab
#   make test   create/update .venv, then ruff, `course build --check` and the whole test suite
#               (the lectures run in tests/test_widgets_kernel.py, which also checks their widgets)
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
# Two pytest workers on the 2-core machine; loadscope keeps a notebook's cells in order.
# The 15 slowest tests are listed at the end (each test has a time limit: pyproject.toml).
PYTEST_ARGS ?= -n 2 --dist loadscope --durations=15

.PHONY: lab test check test-oldest compat build lint install clean sandbox-tools

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

# The quick loop while editing: lint, formatting, stale notebooks, and the tests that run no
# notebook, train nothing long and start no sandbox (well under 2 minutes; make test runs all).
CHECK_SKIPS := tests/test_grader.py tests/test_class_grading.py tests/test_class_attacks.py \
	tests/test_exercise_sets.py tests/test_widgets_kernel.py
check: lint
	$(BIN)/course build --check
	$(BIN)/python -m pytest $(PYTEST_ARGS) $(filter-out $(CHECK_SKIPS),$(wildcard tests/test_*.py))

# Class grading's sandbox is bubblewrap (Debian's bubblewrap); as root it is installed when
# missing, as make e2e installs chromium.
sandbox-tools:
	@command -v bwrap >/dev/null || if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bubblewrap; \
	else echo "make test needs bubblewrap for class grading: sudo apt-get install bubblewrap"; \
		exit 1; fi

test: $(STAMP) sandbox-tools lint
	$(BIN)/course build --check
	$(BIN)/python -m pytest $(PYTEST_ARGS) --nbval-lax --nbval-current-env \
		tests solutions/*.ipynb
	$(MAKE) test-oldest

# The oldest supported numpy / matplotlib / ipywidgets / ipykernel (constraints-oldest.txt,
# Colab's) over the pinned rest, in a venv of their own: the tests that do not grade
# notebooks, and the widget kernel test (every lecture, on ipywidgets 7).
OLDEST_VENV := .venv-oldest
OLDEST_FREED := numpy|matplotlib|ipywidgets|ipykernel|widgetsnbextension|jupyterlab_widgets
OLDEST_TESTS := $(filter-out tests/test_grader.py tests/test_class_grading.py \
	tests/test_exercise_sets.py,$(wildcard tests/test_*.py))
test-oldest: $(STAMP)
	test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	grep -v -i -E '^($(OLDEST_FREED))==' $(CONSTRAINTS) | cat - constraints-oldest.txt \
		> $(OLDEST_VENV)/constraints.txt
	$(OLDEST_VENV)/bin/python -m pip install -q -c $(OLDEST_VENV)/constraints.txt -e '.[test]'
	$(OLDEST_VENV)/bin/python -m pip list 2>/dev/null | grep -i -E '^(torch|$(OLDEST_FREED)) '
	$(OLDEST_VENV)/bin/python -m pytest $(PYTEST_ARGS) $(OLDEST_TESTS)

# Colab-like environments (newest torch from PyPI, numpy 2.0, matplotlib 3.10, ipywidgets
# 7.7.1, ipykernel 6) on each Python, the course installed by its own Colab setup cell from
# this clone's HEAD, then every lecture, solution and `course grade`: tools/compat.py. It
# downloads gigabytes (PyPI's Linux torch is a CUDA build), so it is not in `make test`.
# With pyenv: PYENV_VERSION=3.12.1:3.13.0 make compat
COMPAT_PYTHONS ?= python3.12 python3.13
compat: $(STAMP)
	$(BIN)/python tools/compat.py $(COMPAT_PYTHONS)

clean:
	rm -rf $(VENV) $(OLDEST_VENV) *.egg-info

# Browser tests: every lecture in JupyterLab in Debian's chromium, driven by Playwright (which
# never downloads a browser here). As root, the chromium package is installed when missing.
CHROMIUM := /usr/bin/chromium
.PHONY: e2e

e2e: $(STAMP)
	@test -x $(CHROMIUM) || if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else echo "make e2e needs $(CHROMIUM): install Debian's chromium (sudo apt-get install chromium)"; \
		exit 1; fi
	$(BIN)/python -m pytest -p no:xdist -v e2e
