"""The dashboard's "Segment" tab: the loop's selected model on chosen or uploaded images (``matseg segment``).

The view only. What it segments, and how, is ``matseg_nb.dashboard.actions``: ``segment_sources`` (each
dataset's test images or an uploaded image folder), ``add_segment_images`` (uploads, checked by
``dashboard.uploads``), the background analysis ``segment`` (``pipeline.stage_segment``, the demo's and the
CLI's route) and ``segment_results`` (what each ``<run>/segment/<dataset>/`` folder holds). The run goes in a
detached process (:class:`~matseg_nb.widgets.analysis_tab.AnalysisTab`); its progress line is the last line
of its log (images done of the batch).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import ipywidgets as w

from matseg_nb.dashboard.actions import add_segment_images, segment_results, segment_sources
from matseg_nb.dashboard.uploads import UploadedFile, UploadResult
from matseg_nb.widgets.analysis_tab import AnalysisTab, esc, message_html, png_widget, table_html

#: overlays shown per dataset (every overlay is in the folder)
MAX_OVERLAYS = 12


def csv_link(path: Path, name: str) -> str:
    """A download link for a CSV file (a data: URL, so it needs no file server)."""
    payload = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f"<a class='matseg-segment-csv' download='{esc(name)}' href='data:text/csv;base64,{payload}' "
            f"style='color:#1565c0;text-decoration:underline;font-weight:600'>Download {esc(name)}</a>")


class SegmentTab(AnalysisTab):
    """Pick the images (a dataset's test images, or an uploaded folder), upload more, segment them with the
    loop's selected model in the background, then see per dataset: the batch summary with units and the
    model's error, a table with the QC flags, the overlays and a CSV download."""

    title = "Segment"
    css = "segment"
    kind = "segment"

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.source = w.Dropdown(description="images", layout=w.Layout(width="520px"))
        self.source.add_class("matseg-segment-source")
        self.upload_name = w.Text(description="name", placeholder="new-scans", layout=w.Layout(width="260px"))
        self.upload_name.add_class("matseg-segment-upload-name")
        self.upload = w.FileUpload(description="Images", multiple=True)
        self.upload.add_class("matseg-segment-upload")
        self.upload_button = w.Button(description="Upload", icon="upload")
        self.upload_button.add_class("matseg-segment-upload-add")
        self.upload_message = w.HTML()
        self.upload_message.add_class("matseg-segment-upload-message")
        self.upload_button.on_click(lambda _b: self.add_upload())
        self.refresh_sources()
        help_text = ("<h4>Segment images</h4><div>The loop's selected model of each dataset segments the chosen "
                     "images: masks, a QC flag per image (the screening of <code>matseg qc --new</code>), the "
                     "measurements with units and the model's own error on them (docs/segment.md). Upload "
                     "images (TIFF, PNG, BMP, DM3/4, EMD, AFM) or pick the test images.</div>")
        self.widget.children = (w.HTML(help_text), w.HBox([self.upload_name, self.upload, self.upload_button]),
                                self.upload_message, self.source, *self.widget.children)

    def refresh_sources(self, pick: str | None = None) -> None:
        """Offer the current choices (``actions.segment_sources``); pick ``pick`` when given."""
        options = segment_sources(self.app.state)
        self.source.options = options
        self.source.value = pick if pick is not None and pick in [v for _, v in options] else options[0][1]

    def add_upload(self) -> UploadResult:
        files = [UploadedFile.from_widget(f) for f in self.upload.value]
        result = add_segment_images(self.app.state, self.upload_name.value.strip(), files)
        if result.ok:
            rel = self.app.state.relative(result.folder)
            self.upload_message.value = message_html(f"added {result.summary['n_images']} image(s) as {rel}; "
                                                     "picked below", "ok")
            self.upload.value = ()
            self.refresh_sources(pick=rel)
        else:
            items = "".join(f"<li class='matseg-segment-upload-problem'>{esc(p)}</li>" for p in result.problems)
            self.upload_message.value = (f"<div class='matseg-msg matseg-msg-error' style='color:#8a1c1c'>not "
                                         f"added; nothing in the workspace was changed:<ul>{items}</ul></div>")
        return result

    def paths(self, run: Path) -> dict[str, Path | str] | None:
        return {"images": self.source.value} if self.source.value else {}

    def show(self, out: Path) -> None:
        views = segment_results(out)
        if not views:
            self.output.children = [w.HTML(message_html(f"{self.app.state.relative(out)}: expected segment "
                                                        "output folders, found none", "error"))]
            return
        parts: list[w.Widget] = []
        for v in views:
            flagged = sum(r["flag"] == "flagged" for r in v.rows)
            parts.append(w.HTML(
                f"<h3 class='matseg-segment-dataset'>{esc(v.dataset)}: {len(v.rows)} image(s), {flagged} flagged</h3>"
                f"<pre class='matseg-segment-summary' style='font-family:monospace;white-space:pre;font-size:12px'>{esc(chr(10).join(v.lines))}</pre>"
                + table_html(v.rows, v.columns, "matseg-segment-table") + "<p>" + csv_link(v.csv, f"{v.dataset}"
                                                                                       "-segments.csv") + "</p>"))
            tiles = []
            for name, path, is_flagged in v.overlays[:MAX_OVERLAYS]:
                label = w.HTML(f"<div class='matseg-segment-caption'>{esc(name)}"
                               + (" <b style='color:#8a1c1c'>flagged</b>" if is_flagged else "") + "</div>")
                tiles.append(w.VBox([label, png_widget(path, "matseg-segment-overlay", "300px")]))
            if tiles:
                parts.append(w.GridBox(tiles, layout=w.Layout(grid_template_columns="repeat(3, 310px)")))
        self.output.children = parts
