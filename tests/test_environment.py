"""environment.yml (conda-forge, users and Binder) lists the same runtime dependencies as pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: conda-forge package name -> PyPI distribution name, where they differ
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "matplotlib-base": "matplotlib",
    "dask-core": "dask",
    "huggingface_hub": "huggingface-hub",
}
#: conda-only extras in environment.yml that are not runtime dependencies of the package
NOT_RUNTIME = {"python", "pip", "napari", "pyqt", "jupyterlab"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_runtime() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {_name(d) for d in data["project"]["dependencies"]}


def _conda_runtime(path: Path) -> set[str]:
    env = yaml.safe_load(path.read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            raw = re.split(r"[<>=!~ ]", dep.strip(), maxsplit=1)[0]
            name = CONDA_TO_PYPI.get(raw, raw).lower().replace("_", "-")
            if name not in NOT_RUNTIME:
                names.add(name)
    return names


def test_environment_yml_matches_pyproject():
    conda = _conda_runtime(ROOT / "environment.yml")
    pyproject = _pyproject_runtime()
    assert conda - pyproject == set(), f"in environment.yml but not pyproject.toml: {sorted(conda - pyproject)}"
    assert pyproject - conda == set(), f"in pyproject.toml but not environment.yml: {sorted(pyproject - conda)}"


def test_binder_environment_matches_pyproject():
    assert _conda_runtime(ROOT / "binder" / "environment.yml") == _pyproject_runtime()


def test_constraints_pin_the_ci_torch():
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"
    for dep in _pyproject_runtime():
        assert dep in {k.lower().replace("_", "-") for k in pins}, f"{dep} is not pinned in constraints.txt"
