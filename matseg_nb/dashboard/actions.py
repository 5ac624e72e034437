"""What the dashboard does, without widgets: a workspace, one loop folder per profile, the demo's stages.

Workspace layout::

    <ws>/profiles/<name>.json          profiles (a tiny one is created on first start)
    <ws>/datasets/<name>/              datasets added with "Add images" (``matseg_nb.dashboard.uploads``)
    <ws>/runs/<profile name>/          one loop (``matseg_nb.loop.LoopLayout``): sweep/, compare/, qc/,
                                       explain/, report.html; plus profile.json (the profile the sweep ran),
                                       sweep.log/pid and <analysis>.state.json/.log of the detached processes

Each analysis is the stage function of ``matseg demo`` (``matseg_nb.pipeline``) on the loop context of
the run folder (:meth:`DashboardState.loop`), so the dashboard and the demo write the same artefacts with
the same stage settings (``matseg_nb.loop.stage_settings``). :data:`ANALYSES` names them; the page starts
them in a detached process (``matseg_nb.dashboard.worker``, files in ``matseg_nb.dashboard.background``).

Adding an analysis: write ``def my_analysis(state, run, **paths) -> Path`` (the output folder) here, add it
to :data:`ANALYSES`, and give it a tab (``matseg_nb.widgets.dashboard_app.TAB_REGISTRY``).

Every path typed in the dashboard goes through :meth:`DashboardState.resolve`; nothing typed is ever
executed (processes are started with an argument list, no shell).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matseg_nb.atomic import atomic_write_json, atomic_write_text
from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json
from matseg_nb.loop import LoopLayout
from matseg_nb.report.workspace import resolve_in_workspace

WORKSPACE_ENV = "MATSEG_WORKSPACE"
#: the profile a loop folder's sweep ran (written when the dashboard starts it)
PROFILE_FILE = "profile.json"


def error_text(err: BaseException) -> str:
    """One line for the page: a UserError's problems, else the exception's type and message."""
    if isinstance(err, UserError):
        return "; ".join(err.problems)
    return f"{type(err).__name__}: {err}"


def _package_root() -> Path:
    """The folder above the ``matseg_nb`` package: child processes start there so ``-m matseg_nb...`` imports."""
    return Path(__file__).resolve().parents[2]


class DashboardState:
    """Non-widget state and actions of the dashboard, confined to ``workspace``."""

    def __init__(self, workspace: str | os.PathLike | None = None) -> None:
        from matseg_nb.profiles.starter import starter_profile

        ws = workspace or os.environ.get(WORKSPACE_ENV) or "workspace"
        self.workspace = Path(ws).expanduser().resolve()
        (self.workspace / "profiles").mkdir(parents=True, exist_ok=True)
        (self.workspace / "runs").mkdir(parents=True, exist_ok=True)
        if not any((self.workspace / "profiles").glob("*.json")):
            atomic_write_text(self.workspace / "profiles" / "starter.json", json.dumps(starter_profile(), indent=2))
        self.profile_path: Path | None = None
        self.process: subprocess.Popen | None = None
        self.analyses: dict[str, subprocess.Popen] = {}

    # -- paths ----------------------------------------------------------------------------------
    def resolve(self, user_path: str | os.PathLike) -> Path:
        """Workspace-confined absolute path (UserError when it escapes)."""
        return resolve_in_workspace(self.workspace, str(user_path))

    def relative(self, path: Path) -> str:
        return str(Path(path).resolve().relative_to(self.workspace))

    def list_profiles(self) -> list[str]:
        return sorted(self.relative(p) for p in (self.workspace / "profiles").glob("*.json"))

    def dataset_choices(self) -> list[str]:
        """Datasets the profile editor offers: shipped manifests, then folders added with "Add images"."""
        from matseg_nb.dashboard.uploads import list_uploaded_datasets
        from matseg_nb.profiles.starter import manifest_choices

        return [*manifest_choices(), *(str(p) for p in list_uploaded_datasets(self.workspace))]

    def add_images(self, name: str, images: list, masks: list):
        """Check uploaded images + masks and add them as ``<ws>/datasets/<name>`` (see ``dashboard.uploads``)."""
        from matseg_nb.dashboard.uploads import add_uploaded_dataset

        return add_uploaded_dataset(self.workspace, name, images, masks)

    def list_runs(self) -> list[str]:
        return sorted(self.relative(p.parent) for p in (self.workspace / "runs").glob("*/sweep"))

    def run_dir_for(self, profile_path: Path) -> Path:
        """``<ws>/runs/<profile name>`` (the name inside the profile, else the file stem)."""
        data = read_json(profile_path)
        name = (data.get("name") if isinstance(data, dict) else None) or Path(profile_path).stem
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name)) or "run"
        return self.workspace / "runs" / safe

    def layout(self, run: str | os.PathLike) -> LoopLayout:
        """The loop folders of a workspace run folder (``runs/<name>``)."""
        return LoopLayout(self.resolve(run))

    def loop(self, run: str | os.PathLike):
        """The loop context (``matseg_nb.pipeline.DemoContext``) of a run folder: its recorded profile
        (``profile.json``; for a sweep started elsewhere, the profile its ``sweep.json`` records), the run
        folder as root, the loop's stage settings, and progress lines on stdout (the analysis log)."""
        from matseg_nb.pipeline import loop_context

        layout = self.layout(run)
        profile = layout.root / PROFILE_FILE
        if not profile.is_file():
            recorded = (read_json(layout.sweep / "sweep.json") or {}).get("profile")
            if not isinstance(recorded, dict):
                raise UserError(f"{self.relative(layout.root)}: expected a sweep started from a profile "
                                f"({PROFILE_FILE} or sweep/sweep.json), found neither")
            atomic_write_json(profile, recorded)
        return loop_context(profile, layout.root, log=lambda line: print(line, flush=True))

    # -- sweep ----------------------------------------------------------------------------------
    def start_sweep(self, profile_rel: str) -> Path:
        """Start ``matseg sweep`` on a workspace profile as a detached process; returns the sweep folder.

        The process gets its own session (closing the page or the kernel does not stop it) and logs
        to ``<run>/sweep.log``; the profile is recorded as ``<run>/profile.json`` for the analyses.
        """
        from matseg_nb.profiles import load_profile

        profile = self.resolve(profile_rel)
        if not profile.is_file():
            raise UserError(f"profile {profile_rel}: expected a JSON file in the workspace, found nothing there")
        load_profile(profile)  # refuse an invalid profile before starting anything
        layout = LoopLayout(self.run_dir_for(profile))
        if self.sweep_running(layout.sweep):
            raise UserError(f"sweep {self.relative(layout.sweep)}: expected no sweep running there, found one running")
        layout.make()
        atomic_write_text(layout.root / PROFILE_FILE, profile.read_text())
        log = open(layout.root / "sweep.log", "ab")  # noqa: SIM115 - handed to the child process
        cmd = [sys.executable, "-m", "matseg_nb.cli", "sweep", str(profile), "--out", str(layout.sweep),
               "--no-progress"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(cmd, cwd=str(_package_root()), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        log.close()
        atomic_write_text(layout.root / "sweep.pid", str(self.process.pid))
        return layout.sweep

    def sweep_running(self, sweep: Path) -> bool:
        pid_file = LoopLayout.from_sweep(sweep).root / "sweep.pid"
        if self.process is not None and self.process.poll() is None:
            return True
        try:
            os.kill(int(pid_file.read_text()), 0)
        except (OSError, ValueError):
            return False
        return True

    def status(self, sweep: Path) -> dict | None:
        """``matseg_nb.sweep.sweep_status`` of ``sweep`` or None before the sweep wrote its files."""
        from matseg_nb.sweep import sweep_status

        try:
            return sweep_status(sweep)
        except UserError:
            return None

    def complete_jobs(self, sweep: Path) -> list[Path]:
        from matseg_nb.runs import Sweep

        return [run.path for run in Sweep(sweep).complete_runs()]

    def explain_choices(self, run: Path, job: str) -> list[tuple[str, str]]:
        """(file name, path) of the test images (else validation images) of ``job``'s dataset."""
        from matseg_nb.data import open_dataset
        from matseg_nb.runs import Run

        ctx = self.loop(run)
        ds = open_dataset(Run(ctx.layout.sweep / job).job()["dataset"], base_dir=ctx.profile.base_dir)
        return [(s.image.name, str(s.image)) for s in ds.samples("test") or ds.samples("val")]

    def explain_image_input(self, run: Path, job: str, image: str) -> dict:
        """What Explain explains and the painter shows (``matseg_nb.pipeline.explain_input``: the model input,
        cropped as the loop's explanation settings say)."""
        from matseg_nb.pipeline import explain_input

        ctx = self.loop(run)
        inp = explain_input(ctx, run=ctx.layout.sweep / job, image=image)
        if inp is None:  # pragma: no cover - a chosen run always exists
            raise UserError(f"{job}: expected a complete run, found none")
        return inp

    # -- analyses -------------------------------------------------------------------------------
    def start_analysis(self, kind: str, run: Path, **paths: Path | str) -> dict:
        """Start an analysis of :data:`ANALYSES` on ``run`` in a detached process (``dashboard.background``).

        Like the sweep it has its own session, so closing the page does not stop it; a second start
        while one runs is refused. Returns the recorded state.
        """
        from matseg_nb.dashboard import background as bg

        if kind not in ANALYSES:
            raise UserError(f"analysis: expected one of {', '.join(ANALYSES)}, found {kind!r}")
        run = self.resolve(run)
        if (bg.read_state(run, kind) or {}).get("state") == "running":
            raise UserError(f"{kind} of {self.relative(run)}: expected none running, found one running")
        run.mkdir(parents=True, exist_ok=True)
        args = json.dumps({k: str(v) for k, v in paths.items()})
        cmd = [sys.executable, "-m", "matseg_nb.dashboard.worker", kind, str(self.workspace), str(run), args]
        log = open(bg.log_file(run, kind), "wb")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(cmd, cwd=str(_package_root()), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        log.close()
        self.analyses[kind] = proc
        state = {"state": "running", "pid": proc.pid, "started": time.time()}
        atomic_write_json(bg.state_file(run, kind), state)  # the child rewrites it with its own start
        return state

    def analysis_state(self, kind: str, run: Path) -> dict | None:
        """Recorded state of an analysis plus ``progress`` (the last log line)."""
        from matseg_nb.dashboard import background as bg

        proc = self.analyses.get(kind)
        if proc is not None:
            proc.poll()  # reap a finished child so its pid reads as gone
        state = bg.read_state(run, kind)
        if state is not None:
            state["progress"] = bg.last_log_line(run, kind)
        return state

    def compare(self, run: Path) -> Path:
        """The demo's compare stage (``pipeline.stage_compare``: tables, statistics, recommendation)."""
        from matseg_nb.pipeline import stage_compare

        ctx = self.loop(run)
        stage_compare(ctx)
        return ctx.layout.compare

    def qc(self, run: Path) -> Path:
        """The demo's QC stage (``pipeline.stage_qc``): one QC per dataset of the profile on its
        validation-selected run, output ``qc/<dataset>/``."""
        from matseg_nb.pipeline import stage_qc

        ctx = self.loop(run)
        if not self.complete_jobs(ctx.layout.sweep):
            raise UserError(f"{self.relative(ctx.layout.root)}: expected a complete job to check, found none")
        stage_qc(ctx)
        return ctx.layout.qc

    def explain(self, run: Path, job_dir: Path, image_path: Path, mask_png: Path) -> Path:
        """The demo's explain stage (``pipeline.stage_explain``) on the chosen run, image and drawn region A."""
        from matseg_nb.pipeline import stage_explain

        ctx = self.loop(run)
        stage_explain(ctx, mask=mask_png, run=job_dir, image=image_path)
        return ctx.layout.explain

    def report(self, run: Path) -> Path:
        """The demo's report stage (``pipeline.stage_report``); returns report.html."""
        from matseg_nb.pipeline import stage_report

        ctx = self.loop(run)
        stage_report(ctx)
        return ctx.layout.report_html


def suggest_in_loop(state: DashboardState, run: Path, images: Path, n: int = 10) -> Path:
    """``matseg suggest`` on the loop's selected model of its first dataset: rank the unlabelled ``images``
    (a workspace folder) for annotation; output ``<run>/suggest/<dataset>/`` (docs/suggest.md)."""
    from matseg_nb.suggest import suggest_for_loop

    return Path(suggest_for_loop(state.loop(run), [str(images)], None, n).out_dir)



# ----------------------------------------------------------------------------- segment (deployment)
def segment_in_loop(state: DashboardState, run: Path, images: Path | None = None) -> Path:
    """The demo's segment stage (``pipeline.stage_segment``, as ``matseg segment``): each dataset's selected
    model on ``images`` (a workspace folder; None: each dataset's test images) into ``<run>/segment/<dataset>/``
    (``matseg_nb.segment.SegmentFolder``), a per-image progress bar in the analysis log. Returns
    ``<run>/segment``; UserError when no dataset of the profile has a complete run."""
    from matseg_nb.pipeline import stage_segment

    ctx = state.loop(run)
    stage_segment(ctx, images=[str(images)] if images is not None else None, progress=True)
    if not ctx.results.get("segment"):
        raise UserError(f"{state.relative(ctx.layout.root)}: expected a complete job to segment with, found none")
    return ctx.layout.segment


def segment_sources(state: DashboardState) -> list[tuple[str, str]]:
    """(label, workspace path) of what the Segment tab can segment: each dataset's test images (path ``""``),
    then the image folders uploaded for segmentation (``dashboard.uploads.list_image_folders``)."""
    from matseg_nb.dashboard.uploads import list_image_folders

    out = [("the test images of each dataset", "")]
    for folder in list_image_folders(state.workspace):
        n = sum(1 for p in folder.iterdir() if p.is_file())
        out.append((f"{state.relative(folder)} ({n} file(s))", state.relative(folder)))
    return out


def add_segment_images(state: DashboardState, name: str, images: list):
    """Uploaded images (no masks) -> ``<ws>/images/<name>/`` (``dashboard.uploads.add_uploaded_images``)."""
    from matseg_nb.dashboard.uploads import add_uploaded_images

    return add_uploaded_images(state.workspace, name, images)


@dataclass
class SegmentView:
    """What the Segment tab shows of one ``<run>/segment/<dataset>/`` folder: the terminal summary ``lines``
    (batch numbers with units and the model's test-set error, QC verdict), one row per image of the last batch
    (``columns``: image, status, QC p-value, flag, confidence, area fraction per class in %, median equivalent
    diameter per foreground class with its unit), the overlays (name, path, flagged) and ``csv``
    (segments.csv)."""

    dataset: str
    folder: Path
    lines: list[str]
    columns: list[str]
    rows: list[dict]
    overlays: list[tuple[str, Path, bool]]
    csv: Path


def _flag_word(rec) -> str:
    if not rec.segmented:
        return "-"
    return "not screened" if rec.qc_flag is None else "flagged" if rec.qc_flag else "ok"


def segment_results(out: Path) -> list[SegmentView]:
    """A :class:`SegmentView` per dataset folder under ``out`` (``<run>/segment``) with a complete segment.json."""
    from matseg_nb.segment import SegmentFolder
    from matseg_nb.segment.folder import TABLE_FILE
    from matseg_nb.segment.text import summary_lines

    views = []
    for meta_file in sorted(Path(out).glob("*/segment.json")):
        folder = SegmentFolder(meta_file.parent)
        if not folder.is_complete():
            continue
        batch = set(folder.meta().get("inputs") or [])
        recs = [r for r in folder.images() if r.name in batch]
        qcols: list[tuple[str, str, str]] = []  # (column, class, quantity)
        for r in recs:
            for q in r.measurements:
                col = f"{q.class_name} {'area %' if q.name == 'area_fraction' else f'eq. diameter median [{q.unit}]'}"
                if q.name in ("area_fraction", "eqd_median") and (col, q.class_name, q.name) not in qcols:
                    qcols.append((col, q.class_name, q.name))
        columns = ["image", "status", "QC p-value", "flag", "confidence", *(c for c, _, _ in qcols)]
        rows = []
        for r in recs:
            row = {"image": r.name, "status": r.status_line, "QC p-value": r.qc_p_value, "flag": _flag_word(r),
                   "confidence": r.mean_confidence}
            for col, cls, name in qcols:
                q = r.quantity(cls, name)
                row[col] = q.value if q is not None else None
            rows.append(row)
        overlays = [(r.name, folder.overlay_path(r), bool(r.qc_flag)) for r in recs
                    if r.segmented and folder.overlay_path(r) is not None and folder.overlay_path(r).is_file()]
        views.append(SegmentView(folder.path.name, folder.path, summary_lines(folder), columns, rows, overlays,
                                 folder.path / TABLE_FILE))
    return views


#: the analyses the page can start in the background: kind -> (state, run folder, **paths) -> output folder
ANALYSES: dict[str, Callable[..., Path]] = {
    "compare": DashboardState.compare,
    "qc": DashboardState.qc,
    "explain": DashboardState.explain,
    "suggest": suggest_in_loop,
    "segment": segment_in_loop,
}


def job_progress(sweep: Path, job: dict) -> dict:
    """A status row with the job's live ``epoch`` ("3/10") and latest ``val_iou`` from its progress.json."""
    from matseg_nb.runs import Run

    row = dict(job)
    prog = Run(Path(sweep) / str(job.get("job_id"))).progress()
    if prog and prog.get("epoch") is not None:
        row["epoch"] = f"{prog['epoch']}/{prog.get('max_epochs', '?')}"
        if row.get("val_iou") is None and prog.get("val_iou") is not None:
            row["val_iou"] = prog["val_iou"]
    return row


def recommendations(compare_dir: Path) -> list[dict]:
    """The recommendation of each dataset that the compare stage wrote (``recommendation.json`` first, then
    ``recommendations/*.json``), as saved by ``matseg_nb.compare.recommend.Recommendation.save``."""
    files = [Path(compare_dir) / "recommendation.json", *sorted(Path(compare_dir).glob("recommendations/*.json"))]
    return [rec for rec in (read_json(f) for f in files) if isinstance(rec, dict)]
