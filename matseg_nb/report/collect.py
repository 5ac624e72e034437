"""Collect the facts of one loop (sweep + compare + QC + explain + data) into a JSON-safe dict.

Every reader is tolerant: a missing folder or file makes its section ``{"status": "not run"}``
instead of failing, because the report must describe whatever part of the loop was run.
"""

from __future__ import annotations

import csv
import datetime as _dt
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matseg_nb.jsonio import read_json  # noqa: F401 - re-exported
from matseg_nb.runs import RunFileError, Sweep, parse_job_id

if TYPE_CHECKING:
    from matseg_nb.qc.results import ValidationResult, ValidationRun

#: packages whose versions the report lists (installed distribution names).
VERSION_PACKAGES = (
    "matseg-nb", "torch", "segmentation-models-pytorch", "timm", "lightning", "torchmetrics", "captum",
    "numpy", "scikit-learn", "scikit-image", "pandas", "pydantic", "papermill", "ipywidgets", "voila",
)
#: image files embedded as figures.
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
MAX_TABLE_ROWS = 60
MAX_FIGURES = 24
NOT_RUN = {"status": "not run"}




def read_csv_table(path: Path, max_rows: int = MAX_TABLE_ROWS) -> dict:
    """``{"name", "columns", "rows", "n_rows"}`` of a CSV file; rows are lists of strings (first ``max_rows``)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    return {
        "name": path.stem,
        "file": path.name,
        "columns": header,
        "rows": [[_fmt_cell(c) for c in r] for r in body[:max_rows]],
        "n_rows": len(body),
    }


def _fmt_cell(text: str) -> str:
    """Shorten long floats to 3 significant digits (``0.912345678`` -> ``0.912``); leave the rest alone."""
    try:
        value = float(text)
    except ValueError:
        return text
    if "." not in text and "e" not in text.lower():
        return text
    return f"{value:.3g}"


def find_key(obj: Any, names: tuple[str, ...]) -> Any:
    """First value stored under one of ``names`` (depth-first) in nested dicts/lists, else ``None``."""
    if isinstance(obj, dict):
        for name in names:
            if name in obj:
                return obj[name]
        for value in obj.values():
            found = find_key(value, names)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for value in obj:
            found = find_key(value, names)
            if found is not None:
                return found
    return None


def flatten(obj: Any, prefix: str = "", limit: int = 80) -> list[tuple[str, str]]:
    """``[(dotted.key, text)]`` for the scalar leaves of ``obj`` (lists of scalars joined), first ``limit``."""
    out: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            for i, v in enumerate(value[:20]):
                walk(v, f"{key}[{i}]")
        else:
            out.append((key or "value", _scalar_text(value)))

    walk(obj, prefix)
    return out


def _scalar_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(_scalar_text(v) for v in value)
    return "" if value is None else str(value)


def list_figures(folder: Path, root: Path, first: tuple[str, ...] = ()) -> list[dict]:
    """Image files under ``folder`` (two levels deep) as ``{"name", "path", "abs"}``; stems starting
    with an entry of ``first`` come first (in that order), the rest sorted by path."""

    def rank(p: Path) -> tuple[int, str]:
        return next((i for i, f in enumerate(first) if p.stem.startswith(f)), len(first)), str(p)

    found = [p for pattern in ("*", "*/*") for p in folder.glob(pattern) if p.suffix.lower() in FIGURE_SUFFIXES]
    return [
        {"name": p.stem.replace("_", " "), "path": _rel(p, root), "abs": str(p)}
        for p in sorted(set(found), key=rank)[:MAX_FIGURES]
    ]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _tables(folder: Path) -> list[dict]:
    tables = []
    for p in sorted(folder.glob("*.csv")):
        try:
            tables.append(read_csv_table(p))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return tables


def _json_files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        p.name: data
        for p in sorted(folder.glob("*.json"))
        if p.name not in skip and (data := read_json(p)) is not None
    }


# --------------------------------------------------------------------------- sections


def collect_sweep(sweep_dir: Path) -> dict:
    """Profile, job table (status, config, headline metrics) and versions recorded by the jobs.

    Read through ``matseg_nb.runs.Sweep``; a run whose metrics.json is corrupted keeps its row with the
    file named in ``error`` (the rest still renders).
    """
    sweep = Sweep(sweep_dir)
    sweep_meta = sweep.sweep_meta()
    jobs, versions = [], {}
    for item in sweep.jobs():
        run = item.run
        status, error = item.status, item.error or ""
        try:
            job = run.job()
            prov = run.provenance()
        except RunFileError as err:
            job, prov, status, error = {}, {}, "failed", str(err)
        metrics = None
        if status == "complete":
            try:
                metrics = run.metrics()
            except RunFileError as err:
                status, error = "failed", str(err)
        versions = versions or prov.get("versions") or {}
        parts = parse_job_id(item.job_id)
        jobs.append({
            "job_id": item.job_id,
            "status": status,
            "dataset": job.get("dataset") or parts["dataset"] or "",
            "encoder": job.get("encoder") or parts["encoder"] or "",
            "decoder": job.get("decoder") or parts["decoder"] or "",
            "seed": job.get("seed"),
            "iou": metrics.iou if metrics else None,
            "dice": metrics.dice if metrics else None,
            "train_time_s": metrics.train_time_s if metrics else None,
            "error": error if status != "complete" else "",
        })
    profile = sweep_meta.get("profile")
    return {
        "profile": {"status": "ok", "profile": profile} if profile else dict(NOT_RUN),
        "jobs": jobs,
        "job_versions": versions,
        "sweep_found": sweep.is_sweep(),
    }


def _number(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def collect_data(data_dir: Path | None, dataset_names: list[str], root: Path) -> dict:
    """Provenance and licence of each dataset (from its manifest) plus the data folder's summaries."""
    datasets = [_manifest_facts(name) for name in dataset_names]
    out: dict[str, Any] = {"datasets": datasets}
    if data_dir is not None and data_dir.is_dir():
        out["summaries"] = _json_files(data_dir)
        out["figures"] = list_figures(data_dir, root)
    else:
        out["summaries"], out["figures"] = {}, []
    out["status"] = "ok" if datasets or out["summaries"] or out["figures"] else "not run"
    return out


def _manifest_facts(name: str) -> dict:
    """Source, licence and citation of dataset ``name`` via ``matseg_nb.data`` (best effort)."""
    facts: dict[str, Any] = {"name": name, "title": "", "error": None}
    try:
        from matseg_nb.data import open_dataset

        ds = open_dataset(name)
    except Exception as err:  # noqa: BLE001 - provenance is best effort; the report states why
        facts["error"] = f"{type(err).__name__}: {err}"
        return facts
    manifest = getattr(ds, "manifest", None)
    source = getattr(manifest, "source", None)
    material = getattr(manifest, "material", None)
    facts.update({
        "title": getattr(manifest, "title", "") or "",
        "modality": getattr(ds, "modality", ""),
        "material": getattr(ds, "material", "") or getattr(material, "text", ""),
        "classes": [getattr(c, "name", str(c)) for c in getattr(ds, "classes", [])],
        "licence": getattr(source, "licence", "unknown") if source else "unknown",
        "citation": getattr(source, "citation", "") if source else "",
        "doi": getattr(source, "doi", None) if source else None,
        "source_url": getattr(source, "url", "") if source else "",
        "commit": getattr(source, "commit", None) if source else None,
        "missing_files": len(getattr(ds, "missing", []) or []),
    })
    counts = {}
    for split in ("train", "val", "test"):
        try:
            counts[split] = len(ds.samples(split))
        except Exception:  # noqa: BLE001
            counts[split] = None
    facts["samples"] = counts
    return facts


def collect_compare(compare_dir: Path | None, root: Path) -> tuple[dict, dict]:
    """(comparison section, recommendation section) from the compare folder."""
    if compare_dir is None or not compare_dir.is_dir():
        return dict(NOT_RUN), dict(NOT_RUN)
    jsons = _json_files(compare_dir)
    rec_name = next((n for n in jsons if "recommend" in n), None)
    recommendation = jsons.pop(rec_name) if rec_name else None
    compare = {
        "status": "ok",
        "tables": _tables(compare_dir),
        "figures": list_figures(compare_dir, root),
        "facts": {n: flatten(v) for n, v in jsons.items()},
    }
    rec = (
        {"status": "ok", "file": rec_name, "recommendation": recommendation, "facts": flatten(recommendation)}
        if recommendation is not None
        else dict(NOT_RUN)
    )
    return compare, rec


def collect_qc(qc_dir: Path | None, root: Path) -> dict:
    """QC verdict and its words, its signals (AUROC rows), figures and flagged samples, read through
    ``matseg_nb.qc.folder.QCFolder`` (which alone knows ``qc.json``, ``scores.csv`` and their older layouts)."""
    from matseg_nb.qc.folder import SCORES_FILE, QCFolder
    from matseg_nb.report.answer import qc_words, typicality_iou_words

    if qc_dir is None or not qc_dir.is_dir():
        return dict(NOT_RUN)
    folder = QCFolder(qc_dir)
    if per_dataset := folder.per_dataset():  # qc/<dataset>/: one QC per dataset's model
        sections = {name: collect_qc(sub.path, root) for name, sub in per_dataset.items()}
        first = dict(next(iter(sections.values())))
        first["datasets"] = {k: {"verdict": v.get("verdict", ""), "signals": v.get("signals", []),
                                 "quality_words": v.get("quality_words", "")} for k, v in sections.items()}
        first["figures"] = [f for v in sections.values() for f in v.get("figures", [])]
        return first
    run = folder.validation()
    data = run.to_json() if run is not None else {}
    flagged = [{"level": r.level, "set": r.set, "image": r.image, "detector": r.detector, "iou": r.iou}
               for r in folder.scores()
               if r.flag and (run is None or run.primary_detector is None or r.detector == run.primary_detector)]
    top = {k: v for k, v in data.items() if not isinstance(v, (dict, list)) or k == "ood_sets"}
    return {
        "status": "ok",
        "verdict": "" if run is None else run.verdict,
        "words": "" if run is None else qc_words(run),
        "quality_words": typicality_iou_words(run),
        "facts": flatten(top),
        "signals": [] if run is None else qc_signals(run),
        "flagged": [_row({k: v for k, v in f.items() if v is not None}) for f in flagged][:MAX_TABLE_ROWS],
        "tables": [t for t in _tables(qc_dir) if t["file"] != SCORES_FILE],
        "figures": list_figures(qc_dir, root, first=("roc", "gallery")),
        "qc": data,
    }


#: image-level detection metrics shown as the quality signals Q: column -> candidate keys (first found)
SIGNAL_KEYS: dict[str, tuple[str, ...]] = {
    "auroc": ("auroc",),
    "f1": ("f1", "f1_at_threshold"),
    "precision": ("precision", "precision_at_threshold"),
    "recall": ("recall", "recall_at_threshold"),
    "fpr95": ("fpr95", "fpr_at_95tpr"),
    "auprc": ("auprc",),
}
#: bulky keys left out of the key/value lists (kept in report.json)
BULKY_KEYS = ("curves", "outputs", "per_image", "traceback")


def qc_signals(qc: ValidationRun) -> list[dict]:
    """The typed detector validation's rows (:func:`_validation_rows`) or, for AUROC-only QC, one row per
    (level, OOD set) with the primary detector's image-level AUROC/F1/precision."""
    if qc.validation is not None and qc.validation.checks:
        return _validation_rows(qc.validation)
    rows = []
    for level, lv in qc.levels.items():
        for set_name in lv.ood:
            det, metrics = lv.image_metrics(set_name, qc.primary_detector)
            if not det:
                continue
            row = {"level": level, "OOD set": set_name, "detector": det}
            for col, keys in SIGNAL_KEYS.items():
                found = next((metrics[k] for k in keys if k in metrics), None)
                if found is not None:
                    row[col] = _scalar_text(found)
            row["verdict"] = str(lv.verdicts.get(set_name, ""))
            rows.append(row)
    return rows


def _validation_rows(validation: ValidationResult) -> list[dict]:
    """One row per (set, detector) of the detector validation: AUROC with its 95% interval, images per
    side, and whether the shift hurts the model."""
    return [{"OOD set": c.set, "detector": c.detector,
             "AUROC [95% interval]": "n/a" if c.auroc is None else f"{c.auroc:.3f} [{c.low:.3f}, {c.high:.3f}]",
             "images (held-out / set)": f"{c.n_id} / {c.n_ood}", "harm": c.harm,
             "IoU change": "" if c.iou_change is None else f"{c.iou_change:+.3f}"} for c in validation.checks]


def _row(item: Any) -> dict:
    if isinstance(item, dict):
        return {str(k): _fmt_cell(_scalar_text(v)) for k, v in item.items() if not isinstance(v, (dict, list))}
    return {"sample": str(item)}


def collect_explain(explain_dir: Path | None, root: Path) -> dict:
    """Heatmap figures, faithfulness numbers and the list of saved heatmap arrays."""
    if explain_dir is None or not explain_dir.is_dir():
        return dict(NOT_RUN)
    jsons = _json_files(explain_dir)
    return {
        "status": "ok",
        "faithfulness": {n: flatten(_without(v, BULKY_KEYS), limit=40) for n, v in jsons.items()},
        "arrays": sorted(_rel(p, root) for p in explain_dir.glob("**/*.npy")),
        "tables": _tables(explain_dir),
        "figures": list_figures(explain_dir, root, first=("explanation", "heatmap")),
    }


def _without(obj: Any, keys: tuple[str, ...]) -> Any:
    """``obj`` without the given keys at any depth (for display only)."""
    if isinstance(obj, dict):
        return {k: _without(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [_without(v, keys) for v in obj]
    return obj


def environment_versions() -> dict[str, str]:
    """Installed versions of :data:`VERSION_PACKAGES` plus Python and platform."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def collect_all(
    sweep_dir: Path,
    compare_dir: Path | None,
    qc_dir: Path | None,
    explain_dir: Path | None,
    data_dir: Path | None,
) -> dict:
    """All facts of the report (the content of ``report.json``)."""
    root = sweep_dir.parent
    sweep = collect_sweep(sweep_dir)
    names = list(dict.fromkeys(j["dataset"] for j in sweep["jobs"] if j["dataset"]))
    if not names and sweep["profile"].get("profile"):
        names = [str(d) for d in find_key(sweep["profile"]["profile"], ("datasets",)) or []]
    compare, recommendation = collect_compare(compare_dir, root)
    profile = sweep["profile"]
    title = find_key(profile.get("profile") or {}, ("name", "title")) or sweep_dir.name
    return {
        "title": f"matseg-nb report: {title}",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sweep_dir": str(sweep_dir),
        "folders": {
            "compare": str(compare_dir) if compare_dir else None,
            "qc": str(qc_dir) if qc_dir else None,
            "explain": str(explain_dir) if explain_dir else None,
            "data": str(data_dir) if data_dir else None,
        },
        "sections": {
            "profile": profile,
            "data": collect_data(data_dir, names, root),
            "compare": compare,
            "recommendation": recommendation,
            "qc": collect_qc(qc_dir, root),
            "explain": collect_explain(explain_dir, root),
            "environment": {
                "status": "ok" if sweep["sweep_found"] else "not run",
                "versions": environment_versions(),
                "job_versions": flatten(sweep["job_versions"]),
                "jobs": sweep["jobs"],
            },
        },
    }
