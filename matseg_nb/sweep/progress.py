"""The sweep's progress bar: jobs done/failed/remaining, ETA from finished job durations,
and the latest epoch / validation IoU of a running job (read from its ``history.csv``)."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from matseg_nb.sweep.summary import SweepSummary


def format_seconds(seconds: float | None) -> str:
    """``1h02m``, ``4m10s``, ``12s``; ``?`` for None."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


#: files with per-epoch validation rows: the final history, then Lightning's CSV log written during training
EPOCH_FILES = ("history.csv", "logs/metrics.csv")


def latest_epoch(run_dir: Path) -> str | None:
    """``"ep 3 val_iou 0.512"`` from the last validation row of ``history.csv`` / ``logs/metrics.csv``."""
    for name in EPOCH_FILES:
        try:
            with open(run_dir / name, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("val_iou") not in (None, "")]
        except OSError:
            continue
        if rows:
            last = rows[-1]
            try:
                iou = f"{float(last['val_iou']):.3f}"
            except ValueError:
                iou = "?"
            return f"ep {last.get('epoch', '?')} val_iou {iou}"
    return None


def postfix(summary: SweepSummary, width: int = 86) -> str:
    """One-line state: ``done=3 failed=1 remaining=8 eta=4m10s [job: ep 2 val_iou 0.41]``, at most ``width``
    characters (the running job's id is cut to fit; ``sweep 10/12: `` in front keeps log lines < 100)."""
    c = summary.counts
    text = (f"done={c['complete']} failed={c['failed']} remaining={c['pending'] + c['running']} "
            f"eta={format_seconds(summary.eta_s())}")
    running = [r for r in summary.jobs if r.status == "running"]
    if running:
        epoch = latest_epoch(Path(summary.out_dir) / running[0].job_id)
        tail = f": {epoch}]" if epoch else "]"
        room = max(8, width - len(text) - len(tail) - 2)
        text += f" [{running[0].job_id[:room]}{tail}"
    return text


def _interactive() -> bool:
    """True in a terminal or a Jupyter kernel (``matseg_nb.progress.interactive``)."""
    from matseg_nb.progress import interactive

    return interactive(sys.stderr)


class Progress:
    """tqdm bar over the jobs of a sweep (disabled when ``enabled`` is False).

    On a terminal or in a notebook the bar redraws in place; when stderr is a file or a pipe (logs, CI,
    ``make demo > log``) it prints one plain line each time the state text changes instead."""

    def __init__(self, summary: SweepSummary, enabled: bool = True) -> None:
        self.summary = summary
        self.bar = None
        self.plain = enabled and not _interactive()
        self._last = ""
        if enabled and not self.plain:
            from tqdm.auto import tqdm

            c = summary.counts
            self.bar = tqdm(total=len(summary.jobs), initial=c["complete"] + c["failed"], desc="sweep",
                            unit="job", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed}{postfix}]")
            self.refresh()

    def refresh(self) -> None:
        """Redraw counts and ETA."""
        if self.plain:
            c = self.summary.counts
            text = f"sweep {c['complete'] + c['failed']}/{len(self.summary.jobs)}: {postfix(self.summary)}"
            state = re.sub(r"eta=\S+ ?", "", text)  # a ticking ETA alone is no reason for a new line
            if state != self._last:
                print(text, file=sys.stderr, flush=True)
                self._last = state
        if self.bar is not None:
            c = self.summary.counts
            self.bar.n = c["complete"] + c["failed"]
            self.bar.set_postfix_str(postfix(self.summary), refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.refresh()
            self.bar.close()
