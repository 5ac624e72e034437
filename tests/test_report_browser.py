"""The report in headless Chromium at 1280x900, offline: the first screen answers, nothing scrolls sideways,
print-to-PDF works. Screenshots go to tests/artifacts/ (first screen, QC section)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _report_helpers import make_fake_loop
from _sweep_helpers import write_fake_run

from matseg_nb.report import SECTIONS, build_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VIEWPORT = {"width": 1280, "height": 900}
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

WIDEST = """() => { const w = document.documentElement.clientWidth; const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > w + 1 || el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible'))
      out.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right) + ' ' + el.scrollWidth);
  }
  return out; }"""


def _two_dataset_loop(root: Path) -> Path:
    """The fake loop plus a second dataset (nasa-ebc1) whose comparison is a tie."""
    sweep = make_fake_loop(root)
    write_fake_run(sweep, "nasa-ebc1__tu-test_resnet__Unet__s0__89abcdef", dataset="nasa-ebc1", ious=[0.61, 0.66])
    with open(root / "compare" / "best_table.csv", "a") as fh:
        fh.write("nasa-ebc1,tu-test_resnet,Unet,tu-test_resnet+Unet,0.635,0.58,0.69,tu-test_resnet+FPN,0.63,"
                 "0.005,sign-flip,2,0.9,not significant\n")
    return sweep


def test_report_in_chromium_answers_first_and_fits(tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    sweep = _two_dataset_loop(tmp_path)
    html_path, _ = build_report(sweep, tmp_path / "report.html")
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport=VIEWPORT)
            page = context.new_page()
            page.on("request", lambda req: requested.append(req.url))
            page.goto(html_path.as_uri(), wait_until="load")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report_first_screen.png"))
            # first viewport: each dataset's recommended architecture and QC answer are visible
            rows = page.locator("section#answer table.answer tbody tr")
            assert rows.count() == 2
            for i, (dataset, arch, qc) in enumerate([
                    ("nasa-super1", "tu-test_resnet+Unet", "Not ready"),
                    ("nasa-ebc1", "tu-test_resnet+Unet", "QC ran for nasa-super1 only")]):
                row = rows.nth(i)
                assert dataset in row.inner_text() and arch in row.inner_text() and qc in row.inner_text()
                box = row.bounding_box()
                assert box is not None and box["y"] + box["height"] <= VIEWPORT["height"], (dataset, box)
            assert "insufficient evidence" in rows.nth(1).inner_text()
            assert page.evaluate(WIDEST) == []
            for key, heading in SECTIONS:
                h2 = page.locator(f"section#{key} > h2")
                h2.scroll_into_view_if_needed()
                assert h2.is_visible() and h2.inner_text().strip() == heading
            page.locator("section#qc").screenshot(path=str(ARTIFACTS / "report_qc_section.png"))
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            pdf = page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
            (ARTIFACTS / "report.pdf").write_bytes(pdf)
        finally:
            browser.close()
    external = [u for u in requested if not u.startswith(("file:", "data:"))]
    assert not external, external
