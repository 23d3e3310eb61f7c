"""The setup promises of the README: pins agree, the two commands exist, CI calls them."""

import re
import tomllib

import yaml


def _pyproject(root):
    return tomllib.loads((root / "pyproject.toml").read_text())


def test_environment_yml_pins_match_pyproject(root):
    project = _pyproject(root)["project"]
    pins = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((root / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {p for p in pip_section if not p.startswith("-e")} == pins


def test_every_dependency_is_pinned_exactly_and_torch_is_the_cpu_pin(root):
    project = _pyproject(root)["project"]
    for dep in project["dependencies"] + project["optional-dependencies"]["test"]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", dep), dep
    assert "torch==2.13.0" in project["dependencies"]
    assert not any(d.startswith("torchvision") for d in project["dependencies"])


def test_makefile_and_ci_use_the_readme_commands(root):
    makefile = (root / "Makefile").read_text()
    assert re.search(r"^lab:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "python -m venv" in makefile.replace("$(PYTHON)", "python")
    ci = (root / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (root / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme


def test_jupytext_pairs_ipynb_with_percent_scripts(root):
    assert 'formats = "ipynb,py:percent"' in (root / "jupytext.toml").read_text()


def test_shipped_weights_are_package_data(root):
    data = _pyproject(root)["tool"]["setuptools"]["package-data"]["course_utils"]
    assert "weights/*.pt" in data
    assert (root / "course_utils" / "weights" / "classifier.pt").is_file()
