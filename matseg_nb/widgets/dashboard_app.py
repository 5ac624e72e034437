"""Voilà dashboard: tabs Configure / Run / Compare / Quality / Explain / Annotate next / Segment over one
workspace folder.

The view only: what the buttons do lives in :class:`matseg_nb.dashboard.actions.DashboardState` (workspace,
profiles, the detached sweep, the analyses, each the demo's stage function on the run's
:class:`~matseg_nb.loop.LoopLayout`), testable without a browser. :class:`DashboardApp` builds one view per
entry of :data:`TAB_REGISTRY`.

Adding a tab (e.g. ``widgets/segment_tab.py``): write a class ``MyTab(app)`` with a ``widget`` attribute (and,
if it follows a background analysis, ``follow()``; ``widgets.analysis_tab.AnalysisTab`` gives button + state +
polling, a subclass sets
``title``/``css``/``kind`` and writes ``show(out)``), put its non-widget action in
``matseg_nb.dashboard.actions`` (``ANALYSES`` for background ones), and append
``TabSpec("segment", "Segment", MyTab)`` to :data:`TAB_REGISTRY`; the app exposes it as ``app.segment``.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w

from matseg_nb.dashboard.actions import (  # noqa: F401 - DashboardState is re-exported for the page's users
    DashboardState,
    error_text,
    job_progress,
    recommendations,
)
from matseg_nb.dashboard.uploads import UploadedFile, UploadResult
from matseg_nb.errors import UserError
from matseg_nb.widgets.analysis_tab import (  # noqa: F401 - re-exported for the tabs' users
    POLL_S,
    esc,
    message_html,
    png_widget,
    table_html,
)
from matseg_nb.widgets.analysis_tab import (
    AnalysisTab as _AnalysisTab,
)
from matseg_nb.widgets.profile_editor import ProfileEditor, ProfileEditorModel
from matseg_nb.widgets.segment_tab import SegmentTab

# ------------------------------------------------------------------------------------------------- view


@dataclass(frozen=True)
class TabSpec:
    """One dashboard tab: ``app.<attr>`` is ``view(app)``, shown under ``title``."""

    attr: str
    title: str
    view: Callable[[DashboardApp], Any]


class DashboardApp:
    """The dashboard widget tree (``app.widget``) over a :class:`DashboardState`, one view per :data:`TAB_REGISTRY`
    entry (``app.configure``, ``app.run``, ...)."""

    def __init__(self, workspace: str | Path | None = None) -> None:
        self.state = DashboardState(workspace)
        self.header = w.HTML(f"<div class='matseg-workspace'>workspace: <code>{esc(self.state.workspace)}</code>"
                             " (every path typed here stays inside it)</div>")
        self.views: dict[str, Any] = {}
        for spec in TAB_REGISTRY:
            self.views[spec.attr] = spec.view(self)
            setattr(self, spec.attr, self.views[spec.attr])
        self.tabs = w.Tab(children=[v.widget for v in self.views.values()])
        for i, spec in enumerate(TAB_REGISTRY):
            self.tabs.set_title(i, spec.title)
        self.widget = w.VBox([self.header, self.tabs])
        self.widget.add_class("matseg-dashboard")
        self.follow_analyses()

    def follow_analyses(self) -> None:
        """Show the state of the background analyses of the current run (they may have run while the page was
        closed): every built tab with a ``follow`` method."""
        for view in list(getattr(self, "views", {}).values()):
            if hasattr(view, "follow"):
                view.follow()

    @property
    def run_dir(self) -> Path | None:
        """The run folder of the current profile (or the run picked in the Run tab)."""
        run = getattr(self, "run", None)
        return None if run is None else run.current_run


class ConfigureTab:
    """Pick a workspace profile (or type its path), edit it with the profile editor, save it."""

    def __init__(self, app: DashboardApp) -> None:
        self.app = app
        st = app.state
        self.picker = w.Dropdown(options=st.list_profiles(), description="profile", layout=w.Layout(width="420px"))
        self.path = w.Text(value=self.picker.value or "", description="or path", placeholder="profiles/x.json",
                           layout=w.Layout(width="420px"))
        self.path.add_class("matseg-profile-path")
        self.load_button = w.Button(description="Load", icon="folder-open")
        self.load_button.add_class("matseg-load")
        self.message = w.HTML()
        self.message.add_class("matseg-configure-message")
        self.editor_box = w.VBox()
        self.add_images = AddImagesStep(app, on_added=self._dataset_added)
        self.picker.observe(lambda c: self._pick(c["new"]), names="value")
        self.load_button.on_click(lambda _b: self.load(self.path.value))
        self.widget = w.VBox([self.add_images.widget, w.HTML("<h4>Profile</h4>" + STARTER_NOTE),
                              w.HBox([self.picker]), w.HBox([self.path, self.load_button]), self.message,
                              self.editor_box])
        self.editor: ProfileEditor | None = None
        if self.picker.value:
            self.load(self.picker.value)

    def _pick(self, value: str | None) -> None:
        if value:
            self.path.value = value
            self.load(value)

    def load(self, user_path: str) -> bool:
        """Load a workspace profile into the editor; shows a refusal for paths outside the workspace."""
        st = self.app.state
        try:
            path = st.resolve(user_path)
            model = ProfileEditorModel.from_file(path, workspace=st.workspace)
        except UserError as err:
            self.message.value = message_html("refused: " + error_text(err), "error")
            return False
        self.editor = ProfileEditor(model, save_to=st.relative(path), dataset_choices=st.dataset_choices())
        self.editor.add_class("matseg-profile-editor")
        self.editor.name.add_class("matseg-profile-name")
        self.editor.save_button.add_class("matseg-save")
        self.editor.save_path.add_class("matseg-save-path")
        self.editor.status.add_class("matseg-save-status")
        model.observe(lambda c: self._saved(c["new"]), names="saved_path")
        self.editor_box.children = [self.editor]
        st.profile_path = path
        self.message.value = message_html(f"loaded {st.relative(path)}", "ok")
        self.app_run_refresh()
        return True

    def _dataset_added(self, folder: Path) -> None:
        """Offer the new dataset in the editor's list and pick it for the loaded profile."""
        if self.editor is None:
            return
        self.editor.datasets.options = list(dict.fromkeys([*self.app.state.dataset_choices(),
                                                           *self.editor.datasets.value]))
        self.editor.datasets.value = (str(folder),)

    def _saved(self, saved: str) -> None:
        st = self.app.state
        if saved:
            st.profile_path = Path(saved)
            options = st.list_profiles()
            self.picker.unobserve_all("value")
            self.picker.options = options
            self.picker.value = st.relative(Path(saved)) if st.relative(Path(saved)) in options else None
            self.picker.observe(lambda c: self._pick(c["new"]), names="value")
            self.app_run_refresh()

    def app_run_refresh(self) -> None:
        run = getattr(self.app, "run", None)
        if run is not None:
            run.show_profile()


STARTER_NOTE = ("<div class='matseg-starter-note'>The <code>starter</code> profile trains one resnet18 UNet "
                "from random weights (lr 1e-3, 128 px crops, 10 epochs x 10 steps): it learns (test IoU 0.81 on "
                "nasa-super1). It takes minutes, not seconds: 41 min measured on a 2-core CPU shared with other "
                "work (load 7-15), less on an idle one; the Run tab shows each epoch. Add encoders, decoders or seeds for a "
                "real comparison; each one adds a job of about the same time.</div>")


class AddImagesStep:
    """Upload images and masks (matched by name), check them like ``matseg data check``, add a dataset."""

    def __init__(self, app: DashboardApp, on_added: Callable[[Path], None]) -> None:
        self.app = app
        self.on_added = on_added
        self.name = w.Text(description="name", placeholder="my-images", layout=w.Layout(width="320px"))
        self.name.add_class("matseg-upload-name")
        self.images = w.FileUpload(description="Images", multiple=True)
        self.images.add_class("matseg-upload-images")
        self.masks = w.FileUpload(description="Masks", multiple=True)
        self.masks.add_class("matseg-upload-masks")
        self.add_button = w.Button(description="Add images", icon="plus", button_style="primary")
        self.add_button.add_class("matseg-upload-add")
        self.message = w.HTML()
        self.message.add_class("matseg-upload-message")
        self.preview = w.VBox()
        self.preview.add_class("matseg-upload-preview")
        self.add_button.on_click(lambda _b: self.add())
        help_text = ("<h4>Add images</h4><div>Upload micrographs and their masks (PNG/TIFF/JPEG). A mask matches "
                     "an image by name: <code>a.png</code> with <code>a.png</code> or <code>a_mask.png</code>. "
                     "Masks hold class ids (0, 1, ...) or 0/255. They are checked like <code>matseg data check"
                     "</code> and kept in the workspace under <code>datasets/&lt;name&gt;</code>.</div>")
        self.widget = w.VBox([w.HTML(help_text), w.HBox([self.name, self.images, self.masks, self.add_button]),
                              self.message, self.preview])

    def add(self) -> UploadResult:
        images = [UploadedFile.from_widget(f) for f in self.images.value]
        masks = [UploadedFile.from_widget(f) for f in self.masks.value]
        self.message.value = message_html(f"checking {len(images)} image(s) and {len(masks)} mask(s) ...")
        result = self.app.state.add_images(self.name.value.strip(), images, masks)
        from matseg_nb.dashboard.uploads import result_html

        self.message.value = result_html(result, esc)
        self.preview.children = [png_widget(result.preview_png, "matseg-upload-preview-png", "900px")] \
            if result.ok and result.preview_png else []
        if result.ok:
            self.images.value = ()
            self.masks.value = ()
            self.on_added(result.folder)
        return result


class RunTab:
    """Start the sweep of the current profile in the background and follow its progress."""

    def __init__(self, app: DashboardApp) -> None:
        self.app = app
        self.profile_label = w.HTML()
        self.start_button = w.Button(description="Start sweep", button_style="primary", icon="play")
        self.start_button.add_class("matseg-start")
        self.runs = w.Dropdown(options=app.state.list_runs(), description="runs", layout=w.Layout(width="420px"))
        self.runs.add_class("matseg-runs")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.message = w.HTML()
        self.message.add_class("matseg-run-message")
        self.table = w.HTML()
        self.table.add_class("matseg-status")
        self.report_button = w.Button(description="Build report", icon="file")
        self.report_button.add_class("matseg-report")
        self.report_link = w.HTML()
        self.report_link.add_class("matseg-report-link")
        self.current_run: Path | None = None
        self._syncing = False
        self._poller: threading.Thread | None = None
        self.start_button.on_click(lambda _b: self.start())
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.runs.observe(lambda c: self.attach(c["new"]), names="value")
        self.report_button.on_click(lambda _b: self.build_report())
        self.widget = w.VBox([self.profile_label, w.HBox([self.start_button]),
                              w.HBox([self.runs, self.refresh_button]), self.message, self.table,
                              w.HBox([self.report_button]), self.report_link])
        self.show_profile()
        if self.current_run is None and self.runs.value:
            self.attach(self.runs.value)

    def show_profile(self) -> None:
        st = self.app.state
        p = st.profile_path
        self.profile_label.value = (f"profile: <code>{esc(st.relative(p))}</code>" if p else
                                    "profile: <i>none loaded (Configure tab)</i>")
        if p is not None and self.current_run is None and st.layout(st.run_dir_for(p)).sweep.exists():
            self.attach(st.relative(st.run_dir_for(p)))

    def start(self) -> None:
        st = self.app.state
        if st.profile_path is None:
            self.message.value = message_html("load or save a profile first (Configure tab)", "error")
            return
        try:
            sweep = st.start_sweep(st.relative(st.profile_path))
        except UserError as err:
            self.message.value = message_html("not started: " + error_text(err), "error")
            return
        self.message.value = message_html(f"sweep started in the background (pid {st.process.pid}): "
                                          f"{st.relative(sweep)}; closing this page does not stop it", "ok")
        self.attach(st.relative(sweep.parent))

    def attach(self, run_rel: str | None) -> None:
        """Follow the sweep of ``runs/<name>`` (polling in a background thread)."""
        if not run_rel or self._syncing:
            return
        try:
            self.current_run = self.app.state.resolve(run_rel)
        except UserError as err:
            self.message.value = message_html("refused: " + error_text(err), "error")
            return
        self.refresh()
        self.app.follow_analyses()
        if self._poller is None or not self._poller.is_alive():
            self._poller = threading.Thread(target=self._poll, daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        while self.current_run is not None:
            time.sleep(POLL_S)
            status = self.refresh()
            if status is not None and status["state"] != "running" and not self.app.state.sweep_running(
                    self.app.state.layout(self.current_run).sweep):
                return

    def refresh(self) -> dict | None:
        st = self.app.state
        options = st.list_runs()
        self._syncing = True
        try:
            if list(self.runs.options) != options:
                self.runs.options = options
            if self.current_run is not None and st.relative(self.current_run) in options:
                self.runs.value = st.relative(self.current_run)
        finally:
            self._syncing = False
        if self.current_run is None:
            return None
        sweep = st.layout(self.current_run).sweep
        status = st.status(sweep)
        if status is None:
            self.table.value = message_html("waiting for the sweep to write its status ...")
            return None
        c = status["counts"]
        head = (f"<div class='matseg-state'>sweep <b>{esc(status['state'])}</b>: {c['complete']} complete, "
                f"{c['failed']} failed, {c['running']} running, {c['pending']} pending</div>")
        rows = [job_progress(sweep, job) for job in status["jobs"]]
        self.table.value = head + table_html(rows, ["job_id", "status", "epoch", "duration_s", "val_iou",
                                                    "test_iou", "error"], "matseg-status-table")
        return status

    def build_report(self) -> None:
        run = self.current_run
        if run is None:
            self.report_link.value = message_html("no run selected", "error")
            return
        try:
            html_path = self.app.state.report(run)
        except Exception as err:  # noqa: BLE001
            self.report_link.value = message_html("report failed: " + error_text(err), "error")
            return
        payload = base64.b64encode(html_path.read_bytes()).decode("ascii")
        self.report_link.value = (f"<a download='report.html' href='data:text/html;base64,{payload}' "
                                  "style='color:#1565c0;text-decoration:underline;font-weight:600'>"
                                  f"Download report.html</a> (saved as <code>{esc(self.app.state.relative(html_path))}"
                                  f"</code>)")


class CompareTab(_AnalysisTab):
    title = "Compare"
    css = "compare"
    kind = "compare"

    def show(self, out: Path) -> None:
        import pandas as pd

        parts: list[w.Widget] = []
        for name in ("best_table.csv", "complete_table.csv"):
            if (out / name).exists():
                frame = pd.read_csv(out / name)
                parts.append(w.HTML(f"<h4>{esc(name[:-4].replace('_', ' '))}</h4>"
                                    + frame.to_html(index=False, classes="matseg-compare-table", float_format="%.4g")))
        recs = recommendations(out)
        if recs:
            parts.insert(0, w.HTML(recommendation_html(recs)))
        if (out / "comparison.json").exists():
            from matseg_nb.compare.pipeline import ComparisonResult

            summary = ComparisonResult.load(out).summary()
            parts.insert(0, w.HTML("<p class='matseg-compare-summary'>" + esc(summary).replace("\n", "<br>") + "</p>"))
        parts += [png_widget(p, "matseg-compare-plot") for p in sorted(out.glob("*.png"))[:6]]
        self.output.children = parts


def recommendation_html(recs: list[dict]) -> str:
    """The compare stage's recommendation per dataset: the first-ranked pair and the confidence (the same files
    ``matseg demo`` and the report read)."""
    out = []
    for rec in recs:
        ranked = rec.get("ranked") or []
        top = ranked[0].get("arch") if ranked else "none"
        out.append(f"<p class='matseg-recommendation'>Recommended for {esc(rec.get('dataset'))}: <b>{esc(top)}</b> "
                   f"(confidence {esc(rec.get('confidence'))}: {esc(rec.get('confidence_reason'))})</p>")
    return "".join(out)


class QualityTab(_AnalysisTab):
    title = "Run QC"
    css = "qc"
    kind = "qc"

    def show(self, out: Path) -> None:
        """Per dataset (``qc/<dataset>/``, :class:`matseg_nb.qc.dataset_qc.DatasetQC`): the screening verdicts in
        words with per-image p-values and flags, the detector validation table and verdict, the figures."""
        from matseg_nb.qc.dataset_qc import DatasetQC

        folders = sorted(p.parent.parent for p in Path(out).glob("*/screening/qc.json"))
        if not folders:
            self.output.children = [w.HTML(message_html(f"{self.app.state.relative(out)}: expected qc/<dataset>/ "
                                                        "folders, found none", "error"))]
            return
        parts = []
        for folder in folders:
            try:
                res = DatasetQC.load(folder)
            except UserError as err:
                parts.append(w.HTML(message_html(f"{folder.name}: " + error_text(err), "error")))
                continue
            parts.append(w.HTML(quality_html(res)))
            parts += [png_widget(p, "matseg-qc-plot") for p in (folder / "roc.png", folder / "gallery.png") if p.exists()]
        self.output.children = parts


def quality_html(res) -> str:
    """HTML of one :class:`matseg_nb.qc.dataset_qc.DatasetQC`: the answers in words, per-image p-values and
    flags per screened batch, the validation table; no raw detector scores."""
    first = res.screening[0] if res.screening else None
    held = f"; held-out images: {first.sentence()}" if first is not None else ""
    out = [f"<h3 class='matseg-verdict'>QC of {esc(res.dataset)}: detector validation {esc(res.validation.verdict)}"
           f"{esc(held)}</h3>", f"<p class='matseg-qc-validation'>{esc(res.validation.reason)}</p>"]
    for r in res.screening:
        out.append(f"<h4 class='matseg-qc-batch'>{esc(r.batch)}: {esc(r.sentence())}</h4>")
        out += [f"<p class='matseg-qc-note'>note: {esc(n)}</p>" for n in r.notes]
        frame = r.to_frame().drop(columns=["batch"])
        out.append(frame.to_html(index=False, classes="matseg-qc-table", float_format="%.3g", na_rep=""))
    val = res.validation.to_frame()
    if len(val):
        out.append("<h4>Detector validation: AUROC [95% interval] per shift or dataset</h4>")
        out.append(val.to_html(index=False, classes="matseg-qc-validation-table", float_format="%.3g", na_rep=""))
    return "".join(out)


class ExplainTab:
    """Pick a complete job and a test image, draw A with the painter, compute the heatmap."""

    def __init__(self, app: DashboardApp) -> None:
        self.app = app
        self.jobs = w.Dropdown(description="job", layout=w.Layout(width="520px"))
        self.images = w.Dropdown(description="image", layout=w.Layout(width="520px"))
        self.reload_button = w.Button(description="Find jobs", icon="refresh")
        self.reload_button.add_class("matseg-explain-jobs")
        self.open_button = w.Button(description="Open image", icon="image")
        self.open_button.add_class("matseg-explain-open")
        self.explain_button = w.Button(description="Explain", button_style="primary", disabled=True)
        self.explain_button.add_class("matseg-explain-run")
        self.message = w.HTML()
        self.message.add_class("matseg-explain-message")
        self.painter_box = w.VBox()
        self.painter_box.add_class("matseg-painter")
        self.output = w.VBox()
        self.output.add_class("matseg-explain-output")
        self.painter = None
        self.kind = "explain"
        self.button = self.explain_button
        self._follower: threading.Thread | None = None
        self.reload_button.on_click(lambda _b: self.find_jobs())
        self.jobs.observe(lambda c: self._job_changed(c["new"]), names="value")
        self.open_button.on_click(lambda _b: self.open_image())
        self.explain_button.on_click(lambda _b: self.start())
        self.widget = w.VBox([w.HBox([self.jobs, self.reload_button]), w.HBox([self.images, self.open_button]),
                              self.painter_box, self.explain_button, self.message, self.output])

    def find_jobs(self) -> None:
        run = self.app.run_dir
        if run is None:
            self.message.value = message_html("start or pick a sweep first (Run tab)", "error")
            return
        jobs = [j.name for j in self.app.state.complete_jobs(self.app.state.layout(run).sweep)]
        self.jobs.options = jobs
        self.jobs.value = jobs[0] if jobs else None
        self.message.value = message_html(f"{len(jobs)} complete job(s)" if jobs else "no complete job yet",
                                          "ok" if jobs else "error")

    def _job_changed(self, job: str | None) -> None:
        if not job or self.app.run_dir is None:
            self.images.options = []
            return
        try:
            choices = self.app.state.explain_choices(self.app.run_dir, job)
        except Exception as err:  # noqa: BLE001
            self.message.value = message_html("cannot list images: " + error_text(err), "error")
            return
        self.images.options = choices
        self.images.value = choices[0][1] if choices else None

    def open_image(self) -> None:
        """The painter over what Explain explains (the loop's explanation input, cropped as its settings say)."""
        from matseg_nb.widgets.painter_widget import PainterWidget

        if not self.jobs.value or not self.images.value:
            self.message.value = message_html("pick a job and an image first", "error")
            return
        try:
            inp = self.app.state.explain_image_input(self.app.run_dir, self.jobs.value, self.images.value)
        except Exception as err:  # noqa: BLE001
            self.message.value = message_html(error_text(err), "error")
            return
        mask_path = self.app.state.layout(self.app.run_dir).explain / "A.png"
        self.painter = PainterWidget(inp["image"], save_path=str(mask_path), image_path=self.images.value,
                                     display_width=512, brush=8)
        self.painter.canvas.add_class("matseg-canvas")
        # A is saved into the run by Explain; the painter's own free-text save field stays hidden so no
        # path outside the workspace can be typed here.
        self.painter.save_path.layout.display = "none"
        self.painter.save_button.layout.display = "none"
        self.painter_box.children = [self.painter.widget]
        self.explain_button.disabled = False
        self.message.value = message_html("draw the region A on the image, then press Explain")

    def start(self) -> None:
        if self.painter is None:
            return
        if not self.painter.model.mask.any():
            self.message.value = message_html("draw a region first (the mask A is empty)", "error")
            return
        layout = self.app.state.layout(self.app.run_dir)
        mask = self.painter.model.save(str(layout.explain / "A.png"))
        try:
            self.app.state.start_analysis("explain", layout.root, job_dir=layout.sweep / self.jobs.value,
                                          image_path=Path(self.images.value), mask_png=Path(mask))
        except UserError as err:
            self.message.value = message_html("not started: " + error_text(err), "error")
            return
        self.output.children = []
        self.follow()

    # the background process is followed exactly as in the Compare and Quality tabs
    follow = _AnalysisTab.follow
    _poll = _AnalysisTab._poll
    update = _AnalysisTab.update

    def show(self, out: Path) -> None:
        faith = out / "faithfulness.json"
        parts: list[w.Widget] = []
        for name in ("explanation.png", "heatmap.png"):
            if (out / name).exists():
                parts.append(png_widget(out / name, "matseg-heatmap", width="900px"))
                break
        if faith.exists():
            parts.append(w.HTML(f"<pre class='matseg-faithfulness'>{esc(faith.read_text())}</pre>"))
        self.output.children = parts


class SuggestTab(_AnalysisTab):
    """Which unlabelled images to annotate next (``matseg suggest``, docs/suggest.md) with the loop's model."""

    title = "Suggest"
    css = "suggest"
    kind = "suggest"

    def __init__(self, app: DashboardApp) -> None:
        super().__init__(app)
        self.folder = w.Text(description="unlabelled", placeholder="a folder of images in the workspace")
        self.folder.add_class("matseg-suggest-folder")
        self.widget.children = (self.folder, *self.widget.children)

    def paths(self, run: Path) -> dict[str, Path] | None:
        if not self.folder.value.strip():
            self.message.value = message_html("expected a workspace folder of unlabelled images, found none", "error")
            return None
        return {"images": self.folder.value.strip()}

    def show(self, out: Path) -> None:
        from matseg_nb.suggest import SuggestResult

        res = SuggestResult.load(out)
        table = res.to_frame()[["rank", "image", "atypicality", "uncertainty", "diversity", "reason"]]
        self.output.children = [
            w.HTML("<p class='matseg-suggest-summary'>" + esc(res.summary()).replace("\n", "<br>") + "</p>"
                   + table.to_html(index=False, classes="matseg-suggest-table", float_format="%.2f")),
            *([png_widget(out / "contact_sheet.png", "matseg-suggest-sheet")] if (out / "contact_sheet.png").exists()
              else [])]


#: the tabs in their order; append a :class:`TabSpec` to add one (see the module docstring)
TAB_REGISTRY: list[TabSpec] = [
    TabSpec("configure", "Configure", ConfigureTab),
    TabSpec("run", "Run", RunTab),
    TabSpec("compare", "Compare", CompareTab),
    TabSpec("quality", "Quality", QualityTab),
    TabSpec("explain", "Explain", ExplainTab),
    TabSpec("suggest", "Annotate next", SuggestTab),
    TabSpec("segment", "Segment", SegmentTab),
]
#: the tab titles (kept for callers that list them)
TABS = tuple(spec.title for spec in TAB_REGISTRY)
