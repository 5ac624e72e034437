"""Progress bars: line-based (no carriage-return frames) when the output is not a terminal, live otherwise."""

from __future__ import annotations

import io
import sys


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_redirected_output_gets_plain_lines_without_carriage_returns(monkeypatch):
    from matseg_nb.progress import progress_bar

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    out = io.StringIO()
    for _ in progress_bar(range(40), desc="tiles", unit="tile", file=out, mininterval=0, miniters=10):
        pass
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert 2 <= len(lines) <= 6 and lines[-1].startswith("tiles: 100%") and "40/40" in lines[-1]
    assert all(len(line) <= 100 for line in lines) and len(set(lines)) == len(lines)


def test_a_terminal_gets_the_live_bar(monkeypatch):
    from matseg_nb.progress import progress_bar

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    out = _Tty()
    for _ in progress_bar(range(5), desc="live", file=out, mininterval=0):
        pass
    assert "\r" in out.getvalue()


def test_the_data_check_bar_is_line_based_in_a_log(tmp_path, monkeypatch, capsys):
    """A real bar of the package (``Dataset.describe``'s data check) printed to a redirected stderr."""
    from _data_helpers import make_folder

    from matseg_nb.data import open_dataset

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr("matseg_nb.progress.LINE_INTERVAL_S", 0.0)
    ds = open_dataset(str(make_folder(tmp_path / "ds", [f"im{i}" for i in range(4)])))
    ds.describe(progress=True)
    err = capsys.readouterr().err
    assert "data check" in err and "\r" not in err


def test_a_short_loop_in_a_log_leaves_its_last_line_not_an_opening_or_erased_frame(monkeypatch):
    """leave=False erases a terminal bar; in a log that left only the opening "0%" frame (the demo's QC
    stage printed 13 of them). A log gets no opening frame and keeps the last line."""
    from matseg_nb.progress import progress_bar

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    out = io.StringIO()
    for _ in progress_bar(range(3), desc="QC features", unit="image", leave=False, file=out):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("QC features: 100%") and "3/3" in lines[0]
