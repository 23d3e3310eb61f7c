# Two commands on a fresh machine with Python 3.11:
#   make lab    create .venv if needed, install, register the kernel, open lecture 00 in JupyterLab
#   make test   create/update .venv, then ruff, `course build --check` and the whole test suite
#               (the lectures run in tests/test_widgets_kernel.py, which also checks their widgets)
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every Jupyter server of the venv saves notebooks without dead widgets (course_utils/lab.py).
JUPYTER_CONFIG := $(VENV)/etc/jupyter/jupyter_server_config.json
# Two pytest workers on the 2-core machine; loadscope keeps a notebook's cells in order.
PYTEST_ARGS ?= -n 2 --dist loadscope

.PHONY: lab test build lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/course build --check
	$(BIN)/python -m pytest $(PYTEST_ARGS) --nbval-lax --nbval-current-env \
		tests solutions/*.ipynb

clean:
	rm -rf $(VENV) *.egg-info
