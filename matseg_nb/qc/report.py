"""Tables of a QC summary (``qc.json`` content) for notebooks and reports."""

from __future__ import annotations

import pandas as pd


def metrics_table(summary: dict, unit: str = "image") -> pd.DataFrame:
    """One row per (level, OOD set, detector): AUROC, AUPRC, F1/precision at the deployment threshold,
    best F1 (oracle threshold), FPR at 95% TPR, verdict of the level (``unit``: image or tile)."""
    rows = []
    for lv, v in summary.get("levels", {}).items():
        for name, per_det in v["ood"].items():
            for det, m in per_det.items():
                mm = m[unit]
                rows.append({"level": lv, "ood_set": name, "detector": det, "auroc": mm.get("auroc"),
                             "auprc": mm.get("auprc"), "f1_at_threshold": mm.get("f1_at_threshold"),
                             "precision_at_threshold": mm.get("precision_at_threshold"),
                             "best_f1_oracle_threshold": (mm.get("best_f1_oracle_threshold") or {}).get("f1"),
                             "fpr_at_95tpr": mm.get("fpr_at_95tpr"), "threshold": mm.get("threshold"),
                             "level_verdict": v["verdict"]})
    return pd.DataFrame(rows)
