"""What a person reads in a terminal or a log: lines of at most :data:`WIDTH` columns.

:func:`fit_lines` wraps sentences (continuations indented two columns more than their line; a word wider
than the width, such as a path, stays whole); :func:`echo` prints through it (the loop's default log);
:func:`shorten_middle` fits an identifier into a table column, keeping its start and its end.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

#: the widest line the command line and the loop print; full tables go to files whose paths they print
WIDTH = 100


def fit_lines(lines: Iterable[str] | str, width: int = WIDTH) -> str:
    """``lines`` (or one text) with every line longer than ``width`` wrapped to ``width`` columns."""
    out: list[str] = []
    for text in [lines] if isinstance(lines, str) else lines:
        for line in text.split("\n"):
            if len(line) <= width:
                out.append(line)
                continue
            indent = " " * min(len(line) - len(line.lstrip()) + 2, width // 2)
            out += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False,
                                 break_long_words=False) or [""]
    return "\n".join(out)


def echo(text: str) -> None:
    """Print ``text`` with its lines fitted to :data:`WIDTH` columns (flushed, for logs)."""
    print(fit_lines(text), flush=True)


def shorten_middle(text: str, width: int) -> str:
    """``text`` itself when it fits ``width`` characters, else its start and end around one "…"."""
    if len(text) <= width:
        return text
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
