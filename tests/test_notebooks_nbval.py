"""Regression run of the notebook suite: ``pytest --nbval-lax`` over every ``notebooks/[0-9]*.ipynb``.

How it is wired:

1. A module fixture builds a tiny loop under a temp folder: a 1-job profile (nasa-super1 x
   tu-test_resnet x Unet, random init, 64 px crops, 2 epochs x 2 steps), its sweep (``run_sweep``),
   and an annotation mask A (one painter stroke) on a test image.
2. For each notebook, ``NB_PARAMS`` gives tiny parameters pointing at that loop. They are injected the
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
    """The tiny loop the notebooks read: profile, sweep, one complete run, a test image and its mask A."""
    from matseg_nb.data import open_dataset
    from matseg_nb.explain import PainterModel
    from matseg_nb.sweep import run_sweep

    root = tmp_path_factory.mktemp("nbval")
    profile = root / "tiny.json"
    profile.write_text(json.dumps(tiny_profile(), indent=2))
    sweep = root / "sweep"
    run_sweep(str(profile), str(sweep), progress=False)
    complete = sorted(p.parent for p in sweep.glob("*/COMPLETE"))
    assert complete, f"the tiny sweep produced no complete job: {sorted(p.name for p in sweep.iterdir())}"
    image = open_dataset("nasa-super1").samples("test")[0].image
    painter = PainterModel((512, 512), image_path=image)
    painter.stroke([(200, 200), (240, 220)], radius=6)
    mask = Path(painter.save(str(root / "A.png")))
    return {"root": root, "profile": profile, "sweep": sweep, "run": complete[0], "image": image, "mask": mask}


def nb_params(name: str, lp: dict[str, Path]) -> dict:
    """Tiny parameters for notebook ``name`` (paths are absolute, under the loop root)."""
    root = lp["root"]
    table = {
        "01_configure": {"profile_path": str(lp["profile"]), "save_to": str(root / "saved.json")},
        "02_train": {"job": {}, "run_dir": str(root / "train_example"), "threads": 1},
        # the sweep of the fixture again: every job is complete, so it resumes instantly
        "02_train_sweep": {"profile": str(lp["profile"]), "out_dir": str(lp["sweep"]), "workers": 1},
        "03_compare": {"sweep_dirs": [str(lp["sweep"])], "out_dir": str(root / "compare"),
                       "dataset": "nasa-super1"},
        "04_qc": {"run_dir": str(lp["run"]), "test": [], "shifts": ["noise:strong"], "extractors": ["texture"],
                  "level": "input", "tiles_per_image": 4, "out_dir": str(root / "qc")},
        "05_explain": {"run_dir": str(lp["run"]), "image": str(lp["image"]), "mask": str(lp["mask"]),
                       "window": 16, "stride": 32, "out_dir": str(root / "explain")},
        "06_report": {"sweep_dir": str(lp["sweep"]), "out_html": str(root / "report.html")},
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
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
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
        assert (root / "report.html").exists() and (root / "report.json").exists()
