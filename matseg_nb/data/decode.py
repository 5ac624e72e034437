"""Mask decoding: raw mask pixels -> (H, W) int64 class ids, one decoder per manifest ``mask.kind``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from matseg_nb.data.schema import MaskDecoding
from matseg_nb.errors import UserError


def _single_channel(raw: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) from (H, W) or from (H, W, C) whose colour channels are equal."""
    if raw.ndim == 2:
        return raw
    if raw.ndim == 3 and raw.shape[-1] == 1:
        return raw[..., 0]
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):
        rgb = raw[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
    raise UserError(f"{path}: expected a single-channel mask, found shape {raw.shape}")


def _check_ids(ids: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    if not np.issubdtype(ids.dtype, np.integer):
        if not np.all(np.isfinite(ids)) or not np.array_equal(ids, np.round(ids)):
            raise UserError(f"{path}: expected integer class ids in the mask, found non-integer values")
    values = np.unique(ids)
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:5])
        raise UserError(f"{path}: expected class ids 0..{num_classes - 1}, found value(s) {shown}")
    return ids.astype(np.int64)


def _index(raw: np.ndarray, spec: MaskDecoding, num_classes: int, path: Path) -> np.ndarray:
    return _check_ids(_single_channel(raw, path), num_classes, path)


def _binary(raw: np.ndarray, spec: MaskDecoding, num_classes: int, path: Path) -> np.ndarray:
    m = _single_channel(raw, path)
    values = set(np.unique(m).tolist())
    if values <= {0, 1}:
        return m.astype(np.int64)
    if values <= {0, 255}:
        return (m == 255).astype(np.int64)
    shown = ", ".join(str(v) for v in sorted(values - {0, 1, 255})[:5])
    raise UserError(f"{path}: expected a binary mask (0/1 or 0/255), found value(s) {shown}")


def _threshold(raw: np.ndarray, spec: MaskDecoding, num_classes: int, path: Path) -> np.ndarray:
    m = _single_channel(raw, path)
    return np.where(m > spec.threshold, spec.above, spec.below).astype(np.int64)


def _rgb(raw: np.ndarray, spec: MaskDecoding, num_classes: int, path: Path) -> np.ndarray:
    if raw.ndim != 3 or raw.shape[-1] not in (3, 4):
        raise UserError(f"{path}: expected an RGB(A) colour mask, found shape {raw.shape}")
    rgb = raw[..., :3].astype(np.uint32)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    out = np.full(keys.shape, -1, dtype=np.int64)
    for entry in spec.colours:
        r, g, b = entry.rgb
        out[keys == ((r << 16) | (g << 8) | b)] = entry.class_id
    unknown = out < 0
    if unknown.any():
        if spec.default_class is None:
            cols = np.unique(keys[unknown])
            shown = ", ".join(f"({k >> 16},{(k >> 8) & 255},{k & 255})" for k in cols[:3].tolist())
            raise UserError(
                f"{path}: expected colours from the mask table, found {cols.size} other colour(s) "
                f"e.g. {shown} at {int(unknown.sum())} pixels (no default_class)"
            )
        out[unknown] = spec.default_class
    return out


DECODERS: dict[str, Callable[[np.ndarray, MaskDecoding, int, Path], np.ndarray]] = {
    "index": _index,
    "binary": _binary,
    "threshold": _threshold,
    "rgb": _rgb,
}


def decode_mask(raw: np.ndarray, spec: MaskDecoding, num_classes: int, path: str | Path = "<mask>") -> np.ndarray:
    """Decode raw mask pixels ((H, W) or (H, W, C)) into (H, W) int64 class ids 0..K-1."""
    return DECODERS[spec.kind](raw, spec, num_classes, Path(path))
