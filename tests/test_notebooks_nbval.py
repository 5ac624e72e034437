"""Regression run of the notebook suite: ``pytest --nbval-lax`` over every ``notebooks/[0-9]*.ipynb``.

How it is wired:

1. A module fixture builds a tiny loop under a temp folder: a 1-job profile (nasa-super1 x
   tu-test_resnet x Unet, random init, 64 px crops, 2 epochs x 2 steps) and its sweep (``run_sweep``)
   in ``<loop>/sweep``; the notebooks run on the ``tiny`` stage settings (``MATSEG_NB_STAGE_SETTINGS``).
2. For each notebook, ``nb_params`` gives its parameters: the loop notebooks 01-06 all take the same
   ``profile`` and ``loop_root`` (their chain on the defaults is ``tests/test_notebooks_chain.py``). They are injected the
   way papermill does it (``papermill.parameterize.parameterize_notebook``: a cell tagged
   ``injected-parameters`` after the ``parameters`` cell) into a copy under ``<tmp>/notebooks/``;
   the repository's notebooks are never modified and keep their full-size defaults.
3. Each copy runs in its own ``python -m pytest --nbval-lax --nbval-current-env
   --nbval-sanitize-with tests/nbval_sanitize.cfg`` subprocess. Cells tagged ``# NBVAL_CHECK_OUTPUT``
   are compared after sanitizing; every other cell must merely run without error.

The notebooks run in file order (01 ... 06), so 06_report sees the compare/qc/explain folders the
earlier notebooks wrote. A notebook not in ``NB_PARAMS`` runs with its own defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"
CELL_TIMEOUT_S = 900

pytestmark = pytest.mark.slow


def tiny_profile() -> dict:
    """1 job: nasa-super1 x tu-test_resnet x Unet, random init, 64 px crops, 2 epochs x 2 steps."""
    from matseg_nb.widgets.profile_editor import default_profile

    profile = default_profile("nasa-super1")
    profile["name"] = "nbval-tiny"
    return profile


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> dict[str, Path]:
    """The tiny loop the notebooks read: its profile, its root and its sweep (one complete run)."""
    from matseg_nb.sweep import run_sweep

    root = tmp_path_factory.mktemp("nbval")
    profile = root / "tiny.json"
    profile.write_text(json.dumps(tiny_profile(), indent=2))
    sweep = root / "loop" / "sweep"
    run_sweep(str(profile), str(sweep), progress=False)
    complete = sorted(p.parent for p in sweep.glob("*/COMPLETE"))
    assert complete, f"the tiny sweep produced no complete job: {sorted(p.name for p in sweep.iterdir())}"
    return {"root": root, "profile": profile, "loop": root / "loop"}


def nb_params(name: str, lp: dict[str, Path]) -> dict:
    """Tiny parameters for notebook ``name`` (paths are absolute, under the loop root)."""
    root = lp["root"]
    loop = {"profile": str(lp["profile"]), "loop_root": str(lp["loop"])}
    table = {
        "01_configure": {**loop, "save_to": str(root / "saved.json")},
        "02_train": {"job": {}, "run_dir": str(root / "train_example"), "threads": 1},
        # the sweep of the fixture again: every job is complete, so it resumes instantly
        "02_train_sweep": loop,
        "03_compare": loop,
        "04_qc": loop,
        "05_explain": loop,
        "06_report": loop,
        "07_segment": loop,
    }
    return table.get(name, {})


def parameterized_copy(notebook: Path, params: dict, dest_dir: Path) -> Path:
    """Copy of ``notebook`` with ``params`` injected after its parameters cell (papermill's way)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(notebook))  # as papermill reads it (every cell gets metadata.tags)
    if params:
        nb = parameterize_notebook(nb, params)
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / notebook.name
    nbformat.write(nb, out)
    return out


def run_nbval(notebook: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with",
           str(SANITIZE), "--nbval-cell-timeout", str(CELL_TIMEOUT_S), "-p", "no:cacheprovider", "-q",
           "--rootdir", str(notebook.parent), str(notebook)]
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MATSEG_NB_STAGE_SETTINGS": "tiny"}
    return subprocess.run(cmd, cwd=notebook.parent, env=env, capture_output=True, text=True,
                          timeout=CELL_TIMEOUT_S * 2)


def test_notebook_suite_is_present():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_configure", "06_report"} <= names, names


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_nbval(notebook, loop):
    copy = parameterized_copy(notebook, nb_params(notebook.stem, loop), loop["root"] / "notebooks")
    proc = run_nbval(copy)
    assert proc.returncode == 0, f"nbval failed for {notebook.name}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    root = loop["root"]
    if notebook.stem == "01_configure":
        assert json.loads((root / "saved.json").read_text())["name"] == "nbval-tiny"
    if notebook.stem == "06_report":
        assert (loop["loop"] / "report.html").exists() and (loop["loop"] / "report.json").exists()
