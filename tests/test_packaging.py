"""The setup promises of the README: pins agree, the two commands exist, CI calls them."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version


def _pyproject(root):
    return tomllib.loads((root / "pyproject.toml").read_text())


def _requirements(root) -> dict[str, Requirement]:
    project = _pyproject(root)["project"]
    deps = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return {canonicalize_name(Requirement(d).name): Requirement(d) for d in deps}


def _pins(path) -> dict[str, Version]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    pairs = [line.split("==") for line in lines if line]
    return {canonicalize_name(name): Version(version) for name, version in pairs}


def test_environment_yml_installs_what_make_installs(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]  # the Python constraints.txt was resolved on
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-c constraints.txt", "-e .[lab,test]"]
    assert "-c $(CONSTRAINTS) -e '.[lab,test]'" in (root / "Makefile").read_text()


def test_constraints_pin_every_dependency_inside_its_range(root):
    pins = _pins(root / "constraints.txt")
    for name, requirement in _requirements(root).items():
        assert name in pins, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            requirement,
            pins[name],
        )
    assert pins["torch"] == Version("2.13.0")  # the CPU wheel of the test machine


def test_supported_ranges_admit_colab_and_python_3_11_to_3_13(root):
    project = _pyproject(root)["project"]
    python = SpecifierSet(project["requires-python"])
    assert all(python.contains(v) for v in ("3.11.7", "3.12.1", "3.13.0"))
    requirements = _requirements(root)
    colab = _pins(root / "constraints-oldest.txt")  # Colab's numpy, matplotlib, ipywidgets
    assert {"numpy", "matplotlib", "ipywidgets", "ipykernel"} <= set(colab)
    for name, version in colab.items():
        assert requirements[name].specifier.contains(version), (requirements[name], version)
    assert "mlxtend" not in requirements  # pip install mlxtend upgrades Colab's numpy
    assert not any(name.startswith("torchvision") for name in requirements)
    runtime = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    assert "jupyterlab" not in runtime  # Colab has its own front end; make installs [lab]


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
    assert "weights/*.pt" in data and "datasets/*.npz" in data
    assert (root / "course_utils" / "weights" / "classifier.pt").is_file()


def test_a_wheel_holds_every_module_and_data_file_of_the_package(root, tmp_path):
    """``pip install .`` (not ``-e``) gets the subpackages (grading, the pytest plugin's home;
    gan) and the shipped weights and data, not only the top-level modules."""
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"  # a copy: the build leaves build/ and egg-info behind
    listed = subprocess.run(
        ["git", "ls-files", "course_utils", "pyproject.toml", "README.md"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in listed:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((root / name).read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in listed if n.startswith("course_utils/")}
    assert shipped - inside == set()
