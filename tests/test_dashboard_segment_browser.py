"""Browser walk of the dashboard's Segment tab (headless Debian chromium, Voilà on a free loopback port).

A workspace whose starter loop holds one complete tiny nasa-super1 run -> Segment tab -> a bad upload is
named -> upload two 64-px PNGs -> Segment -> progress in the background -> the table with a QC flag per
image, the overlays and a CSV download link holding segments.csv. Screenshots:
``tests/artifacts/dashboard_segment_*.png``. External requests are aborted.
"""

from __future__ import annotations

import base64

import pytest
from _dashboard_helpers import browser_marks, dashboard_page, start_voila, stop_server
from test_dashboard_browser import ARTIFACTS, LOAD_MS, open_tab, upload
from test_dashboard_segment import _png_bytes, segment_workspace

SEGMENT_MS = 300_000  # QC set-up on nasa-super1's train images + 2 tiny images, in a background process

pytestmark = browser_marks()


@pytest.fixture()
def voila_segment(tmp_path):
    """(url, loop folder) of a Voilà dashboard over a workspace with a complete tiny run; stopped afterwards."""
    loop = segment_workspace(tmp_path / "ws")
    proc, url, log = start_voila(tmp_path / "ws", tmp_path / "voila.log")
    yield url, loop
    stop_server(proc)
    log.close()


def test_segment_tab_in_the_browser(voila_segment, tmp_path):
    pytest.importorskip("playwright.sync_api")
    url, loop = voila_segment
    files = []
    for i in range(2):
        files.append(tmp_path / f"scan{i}.png")
        files[-1].write_bytes(_png_bytes(i))
    (tmp_path / "notes.txt").write_text("not an image")

    with dashboard_page(url, LOAD_MS) as page:
        open_tab(page, "Segment")
        page.fill(".matseg-segment-upload-name input", "scans")
        upload(page, ".matseg-segment-upload", [*files, tmp_path / "notes.txt"])
        page.click(".matseg-segment-upload-add")
        page.locator(".matseg-segment-upload-problem", has_text="notes.txt").wait_for(timeout=30_000)
        assert not (loop.parent.parent / "images" / "scans").exists()
        upload(page, ".matseg-segment-upload", files)
        page.click(".matseg-segment-upload-add")
        page.locator(".matseg-segment-upload-message .matseg-msg-ok").wait_for(timeout=30_000)
        assert "images/scans" in page.locator(".matseg-segment-source select").input_value()
        page.click(".matseg-segment-run")
        page.locator(".matseg-segment-message", has_text="background").wait_for(timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard_segment_1_running.png"), full_page=True)
        table = page.locator(".matseg-segment-table")
        table.wait_for(timeout=SEGMENT_MS)
        text = table.inner_text()
        assert "scan0" in text and "scan1" in text and "flag" in text
        assert all(w in ("ok", "flagged") for w in page.locator(".matseg-segment-table td:nth-child(4)")
                   .all_inner_texts())
        assert page.locator(".matseg-segment-overlay img, img.matseg-segment-overlay").count() == 2
        href = page.locator("a.matseg-segment-csv").get_attribute("href")
        csv = base64.b64decode(href.split(",", 1)[1]).decode()
        assert csv == (loop / "segment" / "nasa-super1" / "segments.csv").read_text()
        assert "done in" in page.locator(".matseg-segment-message").inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard_segment_2_done.png"), full_page=True)

