"""Render the collected facts into one self-contained HTML file (inline CSS, images as data URIs)."""

from __future__ import annotations

import base64
import json
import mimetypes
from pathlib import Path

import jinja2

from matseg_nb.report.answer import sig

TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE = "report.html.j2"

#: (section key, heading) in display order; the browser test checks every heading is visible.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("answer", "Answer per dataset"),
    ("compare", "Comparison"),
    ("qc", "Quality control"),
    ("explain", "Explanation"),
    ("details", "Details"),
)


def data_uri(path: str | Path) -> str:
    """``data:<mime>;base64,...`` of a file (PNG/JPEG/SVG), or ``""`` when it cannot be read."""
    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    try:
        payload = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return ""
    return f"data:{mime};base64,{payload}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data_uri"] = data_uri
    env.filters["pretty_json"] = lambda obj: json.dumps(obj, indent=2, sort_keys=True, default=str)
    env.filters["num"] = lambda v: "" if v is None else f"{v:.3g}"
    env.filters["sig"] = sig
    return env


def render_html(facts: dict) -> str:
    """HTML text of the report for ``facts`` (from :func:`matseg_nb.report.collect.collect_all`)."""
    return _environment().get_template(TEMPLATE).render(facts=facts, s=facts["sections"], sections=SECTIONS)
