# Two commands on a fresh machine with Python 3.11:
#   make lab    create .venv if needed, install, register the kernel, open JupyterLab
#   make test   create/update .venv, then ruff, `course build --check` and the whole test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Two pytest workers on the 2-core machine; loadscope keeps a notebook's cells in order.
PYTEST_ARGS ?= -n 2 --dist loadscope

.PHONY: lab test build lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 \
		--display-name "Python 3 (deep generative models)"
	touch $(STAMP)

install: $(STAMP)

# Jupyter refuses to run as root unless told; containers often run as root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) README.md

build: $(STAMP)
	$(BIN)/course build

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/course build --check
	$(BIN)/python -m pytest $(PYTEST_ARGS) --nbval-lax --nbval-current-env \
		tests lectures/*.ipynb solutions/*.ipynb

clean:
	rm -rf $(VENV) *.egg-info
