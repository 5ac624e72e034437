"""Self-contained HTML + JSON report of one loop: profile, data, comparison, recommendation, QC,
explanations, versions and job ids.

``build_report(sweep_dir, out_html)`` reads the sweep folder and the sibling analysis folders
``compare/``, ``qc/``, ``explain/`` and ``data/`` (unless given explicitly); a missing one is
reported as "not run".
"""

from __future__ import annotations

import os
from pathlib import Path

from matseg_nb.atomic import atomic_write_json, atomic_write_text
from matseg_nb.errors import UserError
from matseg_nb.report.answer import DatasetAnswer, build_answers, explain_sentence, models_note
from matseg_nb.report.collect import collect_all, read_json
from matseg_nb.report.curves import learning_curves
from matseg_nb.report.deployment import collect_deployments
from matseg_nb.report.render import SECTIONS, render_html
from matseg_nb.report.workspace import is_in_workspace, resolve_in_workspace
from matseg_nb.runs import Sweep

__all__ = ["SECTIONS", "DatasetAnswer", "build_answers", "build_report", "default_analysis_dirs", "is_in_workspace", "resolve_in_workspace"]

ANALYSES = ("compare", "qc", "explain", "data")


def default_analysis_dirs(sweep_dir: str | os.PathLike) -> dict[str, Path]:
    """``{"compare": <sweep>/../compare, "qc": ..., "explain": ..., "data": ...}`` (may not exist): the
    folders of the loop's ``matseg_nb.loop.LoopLayout`` whose ``sweep`` is ``sweep_dir``."""
    from matseg_nb.loop import LoopLayout

    layout = LoopLayout.from_sweep(Path(sweep_dir).resolve())
    return {name: getattr(layout, name) for name in ANALYSES}


def build_report(
    sweep_dir: str | os.PathLike,
    out_html: str | os.PathLike,
    compare_dir: str | os.PathLike | None = None,
    qc_dir: str | os.PathLike | None = None,
    explain_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write ``out_html`` (one self-contained file) and ``report.json`` beside it.

    Analysis folders default to the siblings of ``sweep_dir`` (see :func:`default_analysis_dirs`).
    Returns ``(html_path, json_path)``. Raises ``UserError`` when ``sweep_dir`` is not a folder.
    """
    sweep = Path(sweep_dir).expanduser().resolve()
    if not sweep.is_dir():
        raise UserError(f"sweep folder {sweep_dir}: expected an existing folder, found nothing there")
    Sweep.open(sweep)  # one-line UserError when the folder is not a sweep
    defaults = default_analysis_dirs(sweep)
    given = {"compare": compare_dir, "qc": qc_dir, "explain": explain_dir, "data": data_dir}
    dirs = {k: Path(v).expanduser().resolve() if v is not None else defaults[k] for k, v in given.items()}
    for name, folder in given.items():
        if folder is not None and not dirs[name].is_dir():
            raise UserError(f"--{name} {folder}: expected an existing folder, found nothing there")
    facts = collect_all(sweep, dirs["compare"], dirs["qc"], dirs["explain"], dirs["data"])
    html_path = Path(out_html).expanduser().resolve()
    answers = build_answers(sweep, dirs["compare"], dirs["qc"], dirs["explain"],
                            panel_dir=html_path.parent / "report_files")
    facts["answers"] = [a.to_dict() for a in answers]
    facts["models_note"] = models_note(Sweep(sweep))
    if facts["sections"]["compare"].get("status") == "ok":  # validation IoU per epoch, per dataset
        facts["sections"]["compare"]["learning_curves"] = [
            {**lc, "abs": lc["png"], "png": os.path.relpath(lc["png"], html_path.parent)}
            for lc in learning_curves(sweep, html_path.parent / "report_files")]
    facts["failed_runs"] = sum(j["status"] != "complete" for j in facts["sections"]["environment"]["jobs"])
    ex_sec = facts["sections"]["explain"]  # the QC section carries its own words (report.collect.collect_qc)
    if ex_sec.get("status") == "ok":
        ex = read_json(dirs["explain"] / "explain.json")
        ex_sec["sentence"] = explain_sentence(ex) if isinstance(ex, dict) else ""
    from matseg_nb.loop import LoopLayout

    facts["sections"]["deployment"] = collect_deployments(LoopLayout.from_sweep(sweep).segment)
    json_path = html_path.with_name("report.json") if html_path.name != "report.json" else html_path.with_suffix(".facts.json")
    atomic_write_text(html_path, render_html(facts))
    atomic_write_json(json_path, _strip_abs(facts))
    return html_path, json_path


def _strip_abs(obj):
    """Drop the ``abs`` figure paths (an HTML rendering detail) from the JSON facts."""
    if isinstance(obj, dict):
        return {k: _strip_abs(v) for k, v in obj.items() if k != "abs"}
    if isinstance(obj, list):
        return [_strip_abs(v) for v in obj]
    return obj
