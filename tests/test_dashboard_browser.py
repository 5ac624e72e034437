"""Browser walk of the Voilà dashboard (headless Debian chromium, Voilà on a free loopback port).

load -> add images (a bad upload named, then a good one checked and picked) -> refuse a path outside the workspace -> change a profile field -> save -> start a tiny sweep
-> see the status table (live epoch) -> compare table and the same recommendation as ``matseg demo`` -> QC in the background, found again after a reload -> draw a stroke on the canvas -> see the heatmap ->
build the report. Screenshots go to ``tests/artifacts/dashboard_*.png``. External requests
(Voilà's CDN font) are aborted, so the walk needs no network.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from _dashboard_helpers import browser_marks, dashboard_page, start_voila, stop_server

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
NOTEBOOK = REPO / "widgets" / "dashboard.ipynb"
LOAD_MS = 180_000     # Voilà executes the notebook (imports torch) before the page shows widgets
SWEEP_MS = 480_000    # tiny 1-job sweep incl. papermill kernel start (about 1 min unloaded)
EXPLAIN_MS = 180_000
QC_MS = 900_000       # QC of the tiny model in a background process (6.5 min at load 15 on 2 cores)

pytestmark = browser_marks()


@pytest.fixture()
def voila(tmp_path):
    """(url, workspace) of a Voilà server for the dashboard; stopped (with any sweep it started) afterwards."""
    from matseg_nb.widgets.profile_editor import default_profile

    ws = tmp_path / "ws"
    (ws / "profiles").mkdir(parents=True)
    tiny = default_profile("nasa-super1")
    tiny["name"] = "tiny"
    (ws / "profiles" / "tiny.json").write_text(json.dumps(tiny, indent=2))
    (tmp_path / "secret.json").write_text("{}")
    # every route of the loop: tiny stages
    proc, url, log = start_voila(ws, tmp_path / "voila.log", MATSEG_NB_STAGE_SETTINGS="tiny")
    yield url, ws
    stop_server(proc)
    log.close()
    for pid_file in ws.glob("runs/*/sweep.pid"):  # a sweep the walk started and that still runs
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}.png"), full_page=True)


def open_tab(page, title: str) -> None:
    page.locator(".lm-TabBar-tab", has_text=title).first.click()


def png_pairs(folder: Path, n: int = 6, size: int = 160) -> tuple[list[Path], list[Path]]:
    """``n`` grayscale PNG images with bright discs and their 0/255 masks (+ a non-image notes.txt)."""
    import numpy as np
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for i in range(n):
        mask = np.zeros((size, size), bool)
        for _ in range(4):
            cy, cx, r = rng.integers(10, size - 10, 2).tolist() + [int(rng.integers(5, 12))]
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img = np.clip(60 + 120 * mask + rng.normal(0, 15, mask.shape), 0, 255).astype(np.uint8)
        images.append(folder / "images" / f"grain{i}.png")
        masks.append(folder / "masks" / f"grain{i}_mask.png")
        Image.fromarray(img).save(images[-1])
        Image.fromarray((mask * 255).astype(np.uint8)).save(masks[-1])
    (folder / "notes.txt").write_text("not an image")
    return images, masks


def upload(page, css: str, paths: list[Path]) -> None:
    """Choose ``paths`` in an ipywidgets FileUpload (its file input is not in the DOM: use the chooser)."""
    with page.expect_file_chooser() as chooser:
        page.click(css)
    chooser.value.set_files([str(p) for p in paths])
    page.wait_for_timeout(500)


def demo_recommendation(run: Path, out: Path) -> str:
    """The recommendation sentence of ``matseg demo``'s compare stage on a copy of the dashboard's sweep,
    in the words the dashboard shows (``widgets.dashboard_app.recommendation_html``)."""
    import shutil

    from matseg_nb.pipeline import run_demo
    from matseg_nb.widgets.dashboard_app import recommendation_html

    shutil.copytree(run / "sweep", out / "sweep")
    run_demo(run / "profile.json", out, stages=["compare"], log=lambda _line: None)
    rec = json.loads((out / "compare" / "recommendation.json").read_text())
    html = recommendation_html([rec])
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        text = ""

        def handle_data(self, data):
            self.text += data

    parser = _Text()
    parser.feed(html)
    return parser.text


def test_dashboard_walk(voila, tmp_path):
    pytest.importorskip("playwright.sync_api")
    url, ws = voila
    tmp_folder = tmp_path
    external: list[str] = []

    with dashboard_page(url, LOAD_MS, external) as page:
        shot(page, "1_loaded")

        # Add images: a bad upload is named and adds nothing; the good one becomes a picked dataset
        images, masks = png_pairs(tmp_folder / "upload")
        upload(page, ".matseg-upload-images", [*images, tmp_folder / "upload" / "notes.txt"])
        upload(page, ".matseg-upload-masks", masks)
        page.fill(".matseg-upload-name input", "grains")
        page.click(".matseg-upload-add")
        problem = page.locator(".matseg-upload-problem", has_text="notes.txt")
        problem.wait_for(timeout=60_000)
        assert not (ws / "datasets" / "grains").exists()
        shot(page, "0_upload_refused")
        upload(page, ".matseg-upload-images", images)
        upload(page, ".matseg-upload-masks", masks)
        page.click(".matseg-upload-add")
        page.locator(".matseg-class-mapping", has_text="foreground").wait_for(timeout=60_000)
        page.locator(".matseg-upload-preview img").wait_for(timeout=30_000)
        assert "6 pairs checked" in page.locator(".matseg-upload-message").inner_text()
        assert len(list((ws / "datasets" / "grains" / "images").iterdir())) == 6
        shot(page, "0_upload_added")

        # a path outside the workspace is refused with a visible message
        page.fill(".matseg-profile-path input", "../secret.json")
        page.click(".matseg-load")
        msg = page.locator(".matseg-configure-message .matseg-msg-error")
        msg.wait_for(timeout=30_000)
        assert "refused" in msg.inner_text() and "outside" in msg.inner_text()
        shot(page, "2_refused")

        # change a profile field and save
        page.fill(".matseg-profile-name input", "walk")
        page.fill(".matseg-save-path input", "profiles/walk.json")
        page.click(".matseg-save")
        page.locator(".matseg-save-status .matseg-saved").wait_for(timeout=30_000)
        saved = json.loads((ws / "profiles" / "walk.json").read_text())
        assert saved["name"] == "walk"
        assert [d["ref"] for d in saved["dataset"]] == [str((ws / "datasets" / "grains").resolve())]
        shot(page, "3_saved")

        # start the tiny sweep and wait for the status table to show it complete
        open_tab(page, "Run")
        page.click(".matseg-start")
        page.locator(".matseg-run-message .matseg-msg-ok").wait_for(timeout=30_000)
        page.locator(".matseg-status-table", has_text="/2").wait_for(timeout=SWEEP_MS)  # live epoch column
        page.locator(".matseg-state", has_text="finished").wait_for(timeout=SWEEP_MS)
        table = page.locator(".matseg-status-table")
        assert "complete" in table.inner_text(), table.inner_text()
        shot(page, "4_sweep")

        # comparison table
        open_tab(page, "Compare")
        page.click(".matseg-compare-run")
        page.locator(".matseg-compare-table").first.wait_for(timeout=300_000)
        assert "Unet" in page.locator(".matseg-compare-output").inner_text()
        shown = page.locator(".matseg-recommendation").first.inner_text()
        assert shown == demo_recommendation(ws / "runs" / "walk", tmp_folder / "demo"), shown
        shot(page, "5_compare")

        # QC runs in a background process: reload the page while it runs, pick the run, see the verdict
        open_tab(page, "Quality")
        page.click(".matseg-qc-run")
        page.locator(".matseg-qc-message", has_text="background").wait_for(timeout=60_000)
        page.reload(timeout=LOAD_MS)
        page.wait_for_selector(".matseg-profile-editor", timeout=LOAD_MS)
        open_tab(page, "Run")
        page.select_option(".matseg-runs select", label="runs/walk")
        open_tab(page, "Quality")
        page.locator(".matseg-verdict").wait_for(timeout=QC_MS)
        assert any((ws / "runs" / "walk" / "qc").glob("*/qc.json"))  # one QC per dataset
        shot(page, "5b_qc_after_reload")

        # draw a stroke on the painter canvas and get the heatmap
        open_tab(page, "Explain")
        page.click(".matseg-explain-jobs")
        page.locator(".matseg-explain-message .matseg-msg-ok").wait_for(timeout=30_000)
        page.click(".matseg-explain-open")
        canvas = page.locator("canvas.matseg-canvas, .matseg-canvas canvas").last  # ipycanvas: one <canvas>
        canvas.wait_for(timeout=60_000)
        box = canvas.bounding_box()
        x0, y0 = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + box["width"] * 0.1, y0 + box["height"] * 0.05, steps=8)
        page.mouse.up()
        page.wait_for_timeout(1500)
        shot(page, "6_stroke")
        page.click(".matseg-explain-run")
        page.locator(".matseg-heatmap").first.wait_for(timeout=EXPLAIN_MS)
        assert (ws / "runs" / "walk" / "explain" / "heatmap.npy").exists()
        assert json.loads((ws / "runs" / "walk" / "explain" / "explain.json").read_text())  # the demo's files
        shot(page, "7_heatmap")

        # the report download link
        open_tab(page, "Run")
        page.click(".matseg-report")
        link = page.locator(".matseg-report-link a")
        link.wait_for(timeout=120_000)
        assert link.get_attribute("href").startswith("data:text/html;base64,")
        assert (ws / "runs" / "walk" / "report.html").exists()
        shot(page, "8_report")
    assert all("127.0.0.1" not in u for u in external)
