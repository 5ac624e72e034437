"""The terminal / notebook summary of a segment output folder: at most 100 columns, units always printed,
the model's test-set error next to each batch number; full tables are in the folder's CSV files."""

from __future__ import annotations

from matseg_nb.segment.folder import (
    BIAS_FILE,
    SEGMENT_FILE,
    SUMMARY_FILE,
    TABLE_FILE,
    SegmentFolder,
    SummaryRow,
)
from matseg_nb.terminal import WIDTH, fit_lines

#: the quantities printed in the terminal table (every quantity is in summary.csv)
PRINTED = ("area_fraction", "number_density", "eqd_median")
_LABEL = {"area_fraction": "area fraction", "number_density": "number density", "eqd_median": "eq. diameter median",
          "eqd_q1": "eq. diameter Q1", "eqd_q3": "eq. diameter Q3"}


def _num(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    a, sign = abs(v), "+" if signed else ""
    if a and (a < 0.01 or a >= 1e4):
        return f"{v:{sign}.2e}"
    return f"{v:{sign}.2f}" if a < 100 else f"{v:{sign}.1f}"


def _names(names: list[str], room: int) -> str:
    text = ", ".join(names)
    return text if len(text) <= room else text[: max(0, room - 5)].rsplit(",", 1)[0] + ", ..."


def error_words(row: SummaryRow) -> str:
    """``-0.4 pp ± 0.3 (4)`` (bias ± SD (test or out-of-fold images); area fractions in pp, else the row's unit)
    or ``unknown``."""
    if row.bias is None:
        return "unknown"
    unit = " pp" if row.name == "area_fraction" else ""  # other errors are in the row's unit
    spread = f" ± {_num(row.spread)}" if row.spread is not None else ""
    return f"{_num(row.bias, signed=True)}{unit}{spread} ({row.bias_n})"


def summary_lines(folder: SegmentFolder, model_line: bool = True) -> list[str]:
    """Lines saying what the folder holds: the model and why (``model_line``), counts, QC flags, the batch
    table with the model's error, warnings, and where the full tables are; wrapped to at most
    :data:`~matseg_nb.terminal.WIDTH` columns by ``terminal.fit_lines``, never cut (a wider path stays whole)."""
    recs = folder.images()
    meta = folder.meta()
    model = folder.model_info()
    done = [r for r in recs if r.segmented]
    failed = [r for r in recs if not r.segmented]
    out = [f"model: {model.get('why') or model.get('run_dir')}"] if model_line else []
    out += [f"segmented {len(done)} of {len(recs)} image(s) into {folder.path}"]
    skipped = (meta.get("counts") or {}).get("skipped")
    if skipped:
        out.append(f"  {skipped} already done (same content key) and skipped")
    for r in failed[:5]:
        out.append(f"  {r.name}: {r.status_line}")
    if len(failed) > 5:
        out.append(f"  ... {len(failed) - 5} more not segmented (see {TABLE_FILE})")
    qc = folder.batch_qc()
    if qc:
        out.append(f"QC: {qc.get('sentence', '')}")
        if qc.get("flagged"):
            out.append("  flagged (left out of the batch numbers): " + _names(qc["flagged"], WIDTH - 45))
        if qc.get("batch_verdict") == "shifted":
            out.append("  the batch as a whole is less typical than the calibration images (the batch test "
                       "of matseg qc --new): the model's test-set error below may not hold for it")
    else:
        out.append("QC: not screened")
    px = folder.pixel_size()
    if px.get("um"):
        out.append(f"pixel size: {px['um']:g} µm ({px.get('source')})")
    elif px.get("note"):
        out.append(f"pixel size: mixed ({px.get('source')}); see the warning; px where unknown")
    else:
        out.append("pixel size: unknown (no --pixel-size, manifest or file calibration): sizes in px")
    rows = [r for r in folder.summary() if r.name in PRINTED]
    if rows and all(r.n == 0 for r in rows) and any(r.flagged for r in rows):
        out.append(f"every segmented image is flagged: no batch numbers (per-image values in {TABLE_FILE})")
        rows = []
    if rows:
        scored = "n out of fold" if folder.bias_info().get("method") == "out-of-fold" else "n test"
        out.append(f"{'class / quantity':<28}{'mean':>10} {'95% interval':<22}{'n':>3} {'unit':<6}model error ({scored})")
        last = None
        for r in rows:
            if r.class_name != last:
                out.append(r.class_name)
                last = r.class_name
            ci = f"[{_num(r.lo)}, {_num(r.hi)}]" if r.lo is not None else "-"
            label = "  " + _LABEL.get(r.name, r.name)
            out.append(f"{label:<28}{_num(r.mean):>10} {ci:<22}{r.n:>3} {r.unit:<6}{error_words(r)}")
    for u in folder.bias_info().get("not_learned") or []:
        out.append(f"not learned: {u['class_name']} is predicted on none of the {u['n_images']} test image(s) "
                   "that contain it; its numbers here are 0 by construction")
    note = folder.bias_info().get("note")
    if note:
        out.append(f"model error: {note}")
    for w in folder.warnings():
        out.append(f"warning: {w}")
    out.append(f"wrote in {folder.path}: {TABLE_FILE}, {SUMMARY_FILE}, {BIAS_FILE}, {SEGMENT_FILE}")
    return fit_lines(out).split("\n")
