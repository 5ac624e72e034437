"""The report's "Deployment" section: a ``matseg segment`` output in the loop folder, read only through
:class:`matseg_nb.segment.SegmentFolder` (model used, per-image flags, batch summary with units and the
model's test-set error per quantity, the "not learned" notes)."""

from __future__ import annotations

from pathlib import Path

from matseg_nb.report.answer import sig

NOT_RUN = {"status": "not run"}


def _num(value: float | None) -> str:
    return "" if value is None else sig(value)


def collect_deployments(segment_dir: Path | None) -> dict:
    """``{"status", "outputs": {name: facts}}`` of the segment output in ``segment_dir`` (name ``""``) or
    in its sub-folders (``segment/<dataset>/``, as ``stage_segment`` writes); "not run" when none."""
    if segment_dir is None or not Path(segment_dir).is_dir():
        return dict(NOT_RUN)
    folders = [Path(segment_dir)] if (Path(segment_dir) / "segment.json").is_file() else \
        sorted(p.parent for p in Path(segment_dir).glob("*/segment.json"))
    outputs = {("" if f == Path(segment_dir) else f.name): collect_deployment(f) for f in folders}
    return {"status": "ok", "outputs": outputs} if outputs else dict(NOT_RUN)


def collect_deployment(segment_dir: Path | None) -> dict:
    """JSON-safe facts of the segment output in ``segment_dir`` ({"status": "not run"} when absent)."""
    from matseg_nb.segment import SegmentFolder

    if segment_dir is None or not (Path(segment_dir) / "segment.json").is_file():
        return dict(NOT_RUN)
    folder = SegmentFolder.open(segment_dir)
    bias = {r.key: r for r in folder.bias()}
    images = [{"name": r.name, "status": r.status_line,
               "qc": "flagged" if r.qc_flag else ("ok" if r.qc_flag is False else (r.qc_note or "not screened")),
               "p_value": _num(r.qc_p_value), "confidence": _num(r.mean_confidence)} for r in folder.images()]
    summary = []
    for r in folder.summary():
        b = bias.get(r.key)
        summary.append({
            "quantity": r.key, "unit": r.unit, "mean": _num(r.mean),
            "ci95": f"[{_num(r.lo)}, {_num(r.hi)}]" if r.lo is not None else "",
            "n": r.n, "flagged_left_out": len(r.flagged),
            "test_error": "" if b is None or b.bias is None else
            f"{sig(b.bias)} ± {_num(b.spread) or '?'} {b.unit} (n={b.n})"})
    info = folder.bias_info()
    notes = [f"not learned: {u['class_name']} is predicted on none of the {u['n_images']} test image(s) that "
             "contain it; its numbers are 0 by construction" for u in info.get("not_learned") or []]
    if info.get("note"):
        notes.append(f"model error: {info['note']}")
    model = folder.model_info()
    return {
        "status": "ok",
        "folder": str(folder.path),
        "complete": folder.is_complete(),
        "model": {k: str(v) for k, v in model.items() if v not in (None, "")},
        "pixel_size": folder.pixel_size(),
        "images": images,
        "n_flagged": sum(i["qc"] == "flagged" for i in images),
        "summary": summary,
        "notes": notes,
        "warnings": folder.warnings(),
    }
