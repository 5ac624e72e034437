"""Browser walk of the Voilà dashboard (headless Debian chromium, Voilà on a free loopback port).

load -> refuse a path outside the workspace -> change a profile field -> save -> start a tiny sweep
-> see the status table -> compare table -> draw a stroke on the canvas -> see the heatmap ->
build the report. Screenshots go to ``tests/artifacts/dashboard_*.png``. External requests
(Voilà's CDN font) are aborted, so the walk needs no network.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
NOTEBOOK = REPO / "matseg_nb" / "widgets" / "dashboard.ipynb"
LOAD_MS = 180_000     # Voilà executes the notebook (imports torch) before the page shows widgets
SWEEP_MS = 480_000    # tiny 1-job sweep incl. papermill kernel start (about 1 min unloaded)
EXPLAIN_MS = 180_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def voila(tmp_path):
    """(url, workspace) of a Voilà server for the dashboard; stopped (with any sweep it started) afterwards."""
    from matseg_nb.commands.dashboard import dashboard_env, new_token, voila_command
    from matseg_nb.widgets.profile_editor import default_profile

    ws = tmp_path / "ws"
    (ws / "profiles").mkdir(parents=True)
    tiny = default_profile("nasa-super1")
    tiny["name"] = "tiny"
    (ws / "profiles" / "tiny.json").write_text(json.dumps(tiny, indent=2))
    (tmp_path / "secret.json").write_text("{}")
    port = free_port()
    log = open(tmp_path / "voila.log", "wb")  # noqa: SIM115
    token = new_token()
    proc = subprocess.Popen(voila_command(port), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env=dashboard_env(ws, token), start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "voila.log").read_text()
            time.sleep(0.5)
    else:
        pytest.fail("voila did not start: " + (tmp_path / "voila.log").read_text())
    yield f"http://127.0.0.1:{port}/?token={token}", ws
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
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


def test_dashboard_walk(voila):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    url, ws = voila
    external: list[str] = []

    def only_local(route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.route("**/*", only_local)
            page.goto(url, timeout=LOAD_MS)
            page.wait_for_selector(".matseg-profile-editor", timeout=LOAD_MS)
            shot(page, "1_loaded")

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
            shot(page, "3_saved")

            # start the tiny sweep and wait for the status table to show it complete
            open_tab(page, "Run")
            page.click(".matseg-start")
            page.locator(".matseg-run-message .matseg-msg-ok").wait_for(timeout=30_000)
            page.locator(".matseg-state", has_text="finished").wait_for(timeout=SWEEP_MS)
            table = page.locator(".matseg-status-table")
            assert "complete" in table.inner_text(), table.inner_text()
            shot(page, "4_sweep")

            # comparison table
            open_tab(page, "Compare")
            page.click(".matseg-compare-run")
            page.locator(".matseg-compare-table").first.wait_for(timeout=120_000)
            assert "Unet" in page.locator(".matseg-compare-output").inner_text()
            shot(page, "5_compare")

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
            shot(page, "7_heatmap")

            # the report download link
            open_tab(page, "Run")
            page.click(".matseg-report")
            link = page.locator(".matseg-report-link a")
            link.wait_for(timeout=120_000)
            assert link.get_attribute("href").startswith("data:text/html;base64,")
            assert (ws / "runs" / "walk" / "report.html").exists()
            shot(page, "8_report")
        finally:
            browser.close()
    assert all("127.0.0.1" not in u for u in external)
