"""The dashboard's shared view pieces: HTML helpers and :class:`AnalysisTab`, the base of every tab that runs
an analysis of ``matseg_nb.dashboard.actions.ANALYSES`` in a background process and shows its output folder.

Its own module so that a tab in another file (``widgets/segment_tab.py``) and ``widgets/dashboard_app.py``
both import it without an import circle.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as w

from matseg_nb.dashboard.actions import error_text
from matseg_nb.errors import UserError

#: seconds between sweep status polls
POLL_S = 2.0


def esc(text: Any) -> str:
    return html.escape(str(text))


def message_html(text: str, kind: str = "info") -> str:
    colours = {"info": "#23395d", "ok": "#17602c", "error": "#8a1c1c"}
    return f"<div class='matseg-msg matseg-msg-{kind}' style='color:{colours[kind]}'>{esc(text)}</div>"


def table_html(rows: list[dict], columns: list[str], css: str) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return (f"<table class='{css}' style='border-collapse:collapse' border='1' cellpadding='4'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def png_widget(path: Path, css: str, width: str = "640px") -> w.Image:
    img = w.Image(value=Path(path).read_bytes(), format="png", layout=w.Layout(max_width=width))
    img.add_class(css)
    return img


class AnalysisTab:
    """A button that runs an analysis of the current run in a background process, then shows its folder.

    The process outlives the page: on return (or when a run is picked) the tab reads its state and
    progress from the run folder and shows the result when it is done.
    """

    title = ""
    css = ""
    kind = ""

    def __init__(self, app: Any) -> None:  # a widgets.dashboard_app.DashboardApp
        self.app = app
        self.button = w.Button(description=self.title, button_style="primary")
        self.button.add_class(f"matseg-{self.css}-run")
        self.message = w.HTML()
        self.message.add_class(f"matseg-{self.css}-message")
        self.output = w.VBox()
        self.output.add_class(f"matseg-{self.css}-output")
        self.button.on_click(lambda _b: self.start())
        self.widget = w.VBox([self.button, self.message, self.output])
        self._follower: threading.Thread | None = None

    def paths(self, run: Path) -> dict[str, Path] | None:
        """Extra path arguments of the analysis (None: not ready, message shown)."""
        return {}

    def start(self) -> None:
        run = self.app.run_dir
        if run is None:
            self.message.value = message_html("start or pick a sweep first (Run tab)", "error")
            return
        paths = self.paths(run)
        if paths is None:
            return
        try:
            self.app.state.start_analysis(self.kind, run, **paths)
        except UserError as err:
            self.message.value = message_html("not started: " + error_text(err), "error")
            return
        self.output.children = []
        self.follow()

    def follow(self) -> None:
        """Show the state of this analysis for the current run; poll in a thread while it runs."""
        run = self.app.run_dir
        if run is None:
            return
        state = self.update(run)
        if state is not None and state["state"] == "running" and (
                self._follower is None or not self._follower.is_alive()):
            self._follower = threading.Thread(target=self._poll, args=(run,), daemon=True)
            self._follower.start()

    def _poll(self, run: Path) -> None:
        while self.app.run_dir == run:
            time.sleep(POLL_S)
            state = self.update(run)
            if state is None or state["state"] != "running":
                return

    def update(self, run: Path) -> dict | None:
        state = self.app.state.analysis_state(self.kind, run)
        if state is None:
            self.button.disabled = False
            return None
        if state["state"] == "running":
            self.button.disabled = True
            elapsed = time.time() - float(state.get("started", time.time()))
            self.message.value = message_html(f"running in the background ({elapsed:.0f} s; closing this page does "
                                              f"not stop it): {state.get('progress') or 'starting ...'}")
        elif state["state"] == "failed":
            self.button.disabled = False
            self.message.value = message_html("failed: " + str(state.get("error")), "error")
        else:
            self.button.disabled = False
            out = Path(state.get("out") or run / self.kind)
            self.message.value = message_html(f"done in {float(state.get('elapsed_s', 0)):.0f} s: "
                                              f"{self.app.state.relative(out)}", "ok")
            try:
                self.show(out)
            except (OSError, ValueError) as err:
                self.message.value = message_html("cannot show the result: " + error_text(err), "error")
        return state

    def show(self, out: Path) -> None:  # pragma: no cover - overridden
        raise NotImplementedError
