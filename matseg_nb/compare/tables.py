"""Write a table as CSV (raw numbers), Markdown and LaTeX (formatted strings), atomically."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from matseg_nb.atomic import atomic_write_text

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
                  "†": r"$^\dagger$", "±": r"$\pm$", "×": r"$\times$",
                  "Δ": r"$\Delta$", "—": "---", "‡": r"$^\ddagger$", "§": r"\S{}", "¶": r"\P{}"}


def fmt(value, digits: int = 3) -> str:
    """Human format: floats with ``digits`` decimals, NaN/None as an em dash, everything else str()."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, formatter: Callable = fmt) -> str:
    """GitHub-flavoured Markdown table of ``df`` (no index)."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(formatter(v).replace("|", "\\|") for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "", formatter: Callable = fmt) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    cols = "l" * len(df.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
              " & ".join(latex_escape(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(formatter(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(raw: pd.DataFrame, pretty: pd.DataFrame, out_dir: Path, stem: str,
                caption: str = "", note: str = "") -> dict[str, Path]:
    """``<stem>.csv`` from ``raw``; ``<stem>.md`` / ``<stem>.tex`` from ``pretty`` (+ ``note`` below)."""
    out_dir = Path(out_dir)
    paths = {
        f"{stem}_csv": atomic_write_text(out_dir / f"{stem}.csv", raw.to_csv(index=False)),
        f"{stem}_md": atomic_write_text(
            out_dir / f"{stem}.md",
            (f"**{caption}**\n\n" if caption else "") + to_markdown(pretty) + (f"\n{note}\n" if note else "")),
        f"{stem}_tex": atomic_write_text(
            out_dir / f"{stem}.tex",
            to_latex(pretty, caption=caption + (f" {note}" if note else ""), label=f"tab:{stem}")),
    }
    return paths
