"""Progress bars that suit where they print: a live tqdm bar in a terminal or a Jupyter kernel, plain lines
otherwise (a log file, a pipe, ``make demo > log``): no carriage-return frames, at most one line every
:data:`LINE_INTERVAL_S` seconds and one at the end; the opening
"0%" frame is dropped, so a short loop leaves one line, its last.

``progress_bar(...)`` takes tqdm's arguments and returns a tqdm bar; every bar of the package goes
through it.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

#: seconds between two progress lines when the output is not a terminal
LINE_INTERVAL_S = 30.0


def interactive(stream: TextIO | None = None) -> bool:
    """True in a Jupyter kernel (tqdm.auto draws a widget) or when ``stream`` (default stderr) is a terminal."""
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", None) and stream.isatty())


#: tqdm's opening frame ("desc:   0%|   | 0/3 [00:00<?, ?image/s]"), which a log does not need
_OPENING_FRAME = re.compile(r"(^|\s)0%\|.*\| 0/")


class LineWriter:
    """A text stream for tqdm that turns each redraw into one plain line (and drops repeated lines)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> int:
        for part in text.replace("\r", "\n").split("\n"):
            part = part.strip()
            if part and part != self._last and not _OPENING_FRAME.search(part):
                self.stream.write(part + "\n")
                self._last = part
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Any = None, **kwargs: Any):
    """``tqdm.auto.tqdm(iterable, **kwargs)`` when :func:`interactive`, else a line-based ``tqdm.tqdm`` on
    the same stream (``mininterval`` :data:`LINE_INTERVAL_S`, fixed 100-column lines)."""
    stream = kwargs.pop("file", None) or sys.stderr
    if interactive(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, file=stream, **kwargs)
    from tqdm import tqdm

    kwargs.setdefault("mininterval", LINE_INTERVAL_S)
    kwargs["leave"] = True  # a log keeps the last line (leave=False would only erase it, leaving "0%")
    kwargs.pop("dynamic_ncols", None)
    return tqdm(iterable, file=LineWriter(stream), ncols=100, dynamic_ncols=False, **kwargs)
