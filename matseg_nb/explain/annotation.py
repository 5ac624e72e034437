"""Expert annotation masks A: a PNG the size of the image (0 / 255) next to a small JSON.

``<name>.png`` holds A (uint8, 255 = inside); ``<name>.json`` records the image path, its
sha256, the shape (H, W), creation time, the tool that made it ("painter", "napari",
"gt-boundary", ...) and free-form notes. :func:`load_annotation` checks the size against the
image and raises :class:`~matseg_nb.errors.UserError` when it does not match.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json
from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json_object


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_path(png: str | Path) -> Path:
    """The JSON that describes annotation ``png``."""
    return Path(png).with_suffix(".json")


def save_annotation(mask: np.ndarray, png: str | Path, image_path: str | Path | None = None,
                    tool: str = "painter", notes: str = "", extra: dict | None = None) -> Path:
    """Write A (H, W, nonzero = inside) as ``png`` (0/255) plus its JSON; returns the PNG path."""
    a = np.asarray(mask)
    if a.ndim != 2:
        raise UserError(f"annotation mask: expected a 2-D array (H, W), found shape {a.shape}")
    png = Path(png)
    buf = io.BytesIO()
    Image.fromarray(np.where(a > 0, 255, 0).astype(np.uint8)).save(buf, format="PNG")
    atomic_write_bytes(png, buf.getvalue())
    meta = {
        "image": str(image_path) if image_path else None,
        "image_sha256": sha256_file(image_path) if image_path and Path(image_path).is_file() else None,
        "shape": [int(a.shape[0]), int(a.shape[1])],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": tool,
        "pixels": int((a > 0).sum()),
        "notes": notes,
        **(extra or {}),
    }
    atomic_write_json(sidecar_path(png), meta)
    return png


def check_mask_extent(a: np.ndarray, name: str) -> None:
    """UserError unless A (H, W) bool has pixels both inside and outside; ``name``: the file or field.

    An empty A leaves nothing to explain; an A covering the whole image leaves no distance to A, which the
    faithfulness test conditions on (``matseg_nb.explain.faithfulness``)."""
    h, w = a.shape
    if not a.any():
        raise UserError(f"{name}: expected at least one pixel inside A, found an empty mask (0 of {h}x{w} px)")
    if a.all():
        raise UserError(f"{name}: expected pixels outside A too (H is tested by distance to A), found A "
                        f"covering the whole {h}x{w} px image")


def load_annotation(png: str | Path, image_shape: tuple[int, ...] | None = None,
                    notes: list[str] | None = None, check_extent: bool = False) -> np.ndarray:
    """Read A from ``png`` as bool (H, W); ``image_shape`` (H, W) or (C, H, W) must match.

    A PNG with values other than 0 and its maximum (anti-aliased brush edges) is thresholded at half
    its maximum; the note saying so is appended to ``notes``. ``check_extent``: an empty A or one covering
    the whole image is a UserError naming ``png`` (:func:`check_mask_extent`; explanations need both)."""
    png = Path(png)
    if not png.is_file():
        raise UserError(f"{png}: expected an annotation PNG, found no such file")
    try:
        arr = np.asarray(Image.open(png))
    except Exception as err:  # noqa: BLE001 - any decoding problem is a user problem
        raise UserError(f"{png}: expected a PNG image, found unreadable file ({err})") from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    if image_shape is not None:
        hw = tuple(int(v) for v in image_shape[-2:])
        if arr.shape != hw:
            raise UserError(f"{png}: expected an annotation of the image's size {hw[0]}x{hw[1]} (HxW), "
                            f"found {arr.shape[0]}x{arr.shape[1]}")
    values = np.unique(arr)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        hi = float(values.max())
        a = arr >= hi / 2
        if notes is not None:
            notes.append(f"{png.name} is not binary ({values.size} grey levels, e.g. anti-aliased edges): "
                         f"thresholded at {hi / 2:g} (half its maximum), {int(a.sum())} px inside A")
    else:
        a = arr > 0
    if check_extent:
        check_mask_extent(a, str(png))
    return a


def load_annotation_meta(png: str | Path) -> dict:
    """The JSON next to ``png`` ({} when absent)."""
    side = sidecar_path(png)
    return read_json_object(side) or {}


def boundary_annotation_from_gt(mask: np.ndarray, width: int = 3) -> np.ndarray:
    """A from a ground truth (H, W) of class ids: pixels within ``width`` px of a class boundary."""
    m = np.asarray(mask)
    edge = np.zeros(m.shape, dtype=bool)
    edge[:-1, :] |= m[:-1, :] != m[1:, :]
    edge[1:, :] |= m[:-1, :] != m[1:, :]
    edge[:, :-1] |= m[:, :-1] != m[:, 1:]
    edge[:, 1:] |= m[:, :-1] != m[:, 1:]
    if width > 1 and edge.any():
        edge = ndimage.binary_dilation(edge, iterations=width - 1)
    return edge


def save_boundary_annotation(gt: np.ndarray, png: str | Path, image_path: str | Path | None = None,
                             width: int = 3) -> Path:
    """Save :func:`boundary_annotation_from_gt` labelled ``tool="gt-boundary"`` in the JSON."""
    note = f"derived from the ground truth's class boundaries (width {width} px), not drawn by an expert"
    return save_annotation(boundary_annotation_from_gt(gt, width), png, image_path, tool="gt-boundary",
                           notes=note, extra={"boundary_width": int(width)})
