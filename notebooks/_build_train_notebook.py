"""Generate notebooks/02_train.ipynb (one training job; executed per job by papermill in a sweep).

Run: python notebooks/_build_train_notebook.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", "# Train one job\n\nParameters (papermill): `job` is `Job.to_dict()` from `matseg plan` (an empty dict "
           "runs a tiny example job), `run_dir` the run folder, `threads` the torch CPU threads (0 = default). "
           "Writes the run folder described in `docs/ARCHITECTURE.md`; the sweep writes `COMPLETE` afterwards."),
    ("parameters", 'job = {}\nrun_dir = "runs/example"\nthreads = 0'),
    ("code", "from matseg_nb.training import example_job, metrics_table, per_class_table, run_job\n\n"
             "job = job or example_job()\nmetrics = run_job(job, run_dir, threads=threads)"),
    ("code", 'print(metrics["job_id"], "| encoder weights:", metrics["encoder_weights"], "| epochs:",\n'
             '      metrics["epochs_run"], "| best epoch:", metrics["best_epoch"])\nmetrics_table(metrics)'),
    ("code", "per_class_table(metrics)"),
]


def build() -> nbformat.NotebookNode:
    cells = []
    for kind, src in CELLS:
        if kind == "md":
            cells.append(new_markdown_cell(src))
        else:
            cell = new_code_cell(src)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    out = Path(__file__).resolve().parent / "02_train.ipynb"
    nb = build()
    nbformat.validate(nb)
    nbformat.write(nb, str(out))
    print(out)


if __name__ == "__main__":
    main()
