"""Turn whatever stopped a job (notebook exception, kernel death, timeout, lost worker) into
the JSON record written to ``<run_dir>/error.json`` and into the sweep summary."""

from __future__ import annotations

import re
import traceback as tb
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks carry them)."""
    return _ANSI.sub("", text)


def _notebook_error(exc: Any) -> dict[str, Any]:
    """Fields of a ``papermill.PapermillExecutionError`` (exception raised inside a cell)."""
    return {
        "type": str(exc.ename),
        "message": strip_ansi(str(exc.evalue)),
        "traceback": strip_ansi("\n".join(exc.traceback or [])),
        "cell": {"index": exc.cell_index, "execution_count": exc.exec_count, "source": exc.source},
        "where": "notebook",
    }


def _kernel_death(exc: BaseException) -> dict[str, Any]:
    return {
        "type": "KernelDied",
        "message": f"the notebook kernel died ({type(exc).__name__}: {exc}); "
        "a crash, os._exit or the out-of-memory killer stops a kernel this way",
        "traceback": "".join(tb.format_exception(exc)),
        "cell": None,
        "where": "kernel",
    }


def _generic(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(tb.format_exception(exc)),
        "cell": None,
        "where": "runner",
    }


def _kind(exc: BaseException) -> str:
    if hasattr(exc, "ename") and hasattr(exc, "cell_index"):
        return "notebook"
    if type(exc).__name__ == "DeadKernelError":
        return "kernel"
    return "generic"


#: exception kind -> record builder
_BUILDERS = {"notebook": _notebook_error, "kernel": _kernel_death, "generic": _generic}


def error_record(exc: BaseException, failed_cell: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-safe ``{type, message, traceback, cell, where}`` for ``exc``.

    ``failed_cell`` (index, source) fills ``cell`` when the exception itself does not say
    which cell was running (kernel death, timeout).
    """
    record = _BUILDERS[_kind(exc)](exc)
    if record["cell"] is None and failed_cell is not None:
        record["cell"] = failed_cell
    return record


def one_line(record: dict[str, Any] | None) -> str | None:
    """``"Type: message"`` (first line of the message, at most 300 characters) for tables."""
    if not record:
        return None
    message = (record.get("message") or "").strip().splitlines()
    return f"{record.get('type', 'Error')}: {message[0] if message else ''}"[:300]
