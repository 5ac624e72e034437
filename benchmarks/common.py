"""Shared helpers: timing, peak memory and the result record every case returns."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time (s) over ``repeat`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def record(case: str, variant: str, ours_s: float, alternative: str, alt_s: float | None,
           max_abs_diff: float | None, **extra: Any) -> dict:
    """One row of the results table. ``ratio`` = alternative time / our time (> 1: we are faster)."""
    return {
        "case": case,
        "variant": variant,
        "ours_s": round(ours_s, 4),
        "alternative": alternative,
        "alt_s": None if alt_s is None else round(alt_s, 4),
        "ratio": None if alt_s is None or ours_s <= 0 else round(alt_s / ours_s, 2),
        "max_abs_diff": max_abs_diff,
        **extra,
    }


def machine() -> dict:
    import os

    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


def write_results(case: str, rows: list[dict], out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{case}.json"
    path.write_text(json.dumps({"case": case, "machine": machine(), "rows": rows}, indent=2, default=str) + "\n")
    return path


def markdown_table(rows: list[dict]) -> str:
    cols = ["case", "variant", "ours_s", "alternative", "alt_s", "ratio", "max_abs_diff"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"
