"""The report opens in headless Chromium with no network and shows every section heading."""

from __future__ import annotations

from pathlib import Path

import pytest
from _report_helpers import make_fake_loop

from matseg_nb.report import SECTIONS, build_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_report_renders_offline_in_chromium(tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    sweep = make_fake_loop(tmp_path)
    html_path, _ = build_report(sweep, tmp_path / "report.html")
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("request", lambda req: requested.append(req.url))
            page.goto(html_path.as_uri(), wait_until="load")
            for key, heading in SECTIONS:
                h2 = page.locator(f"section#{key} > h2")
                h2.scroll_into_view_if_needed()
                assert h2.is_visible(), heading
                assert h2.inner_text().strip() == heading
            # every inlined image decoded (naturalWidth > 0)
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report_full.png"), full_page=True)
        finally:
            browser.close()
    external = [u for u in requested if not u.startswith(("file:", "data:"))]
    assert not external, external
