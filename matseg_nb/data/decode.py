"""Mask decoding: raw mask pixels -> (H, W) int64 class ids, one decoder per manifest ``mask.kind``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    """Colour table lookup; a single-channel (grey-level) mask is looked up as grey (v, v, v)."""
    if raw.ndim == 2 or (raw.ndim == 3 and raw.shape[-1] == 1):
        grey = raw.reshape(raw.shape[:2])
        raw = np.repeat(grey[..., None], 3, axis=-1)
    if raw.ndim != 3 or raw.shape[-1] not in (3, 4):
        raise UserError(f"{path}: expected an RGB(A) colour mask, found shape {raw.shape}")
    if not np.issubdtype(raw.dtype, np.integer) or raw.max(initial=0) > 255:
        raise UserError(f"{path}: expected 8-bit colour or grey levels 0..255 in the mask, found {raw.dtype} up to {raw.max()}")
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


# --- automatic decoding for plain folders -------------------------------------------------------

MAX_LEVELS = 16  # more distinct grey levels / colours than this = anti-aliased or lossy, not classes
LOSSY_SUFFIXES = {".jpg", ".jpeg"}


@dataclass(frozen=True)
class MaskMapping:
    """How a folder's mask pixels become class ids. ``kind``: index | binary | grey | colour.
    ``values``: per class id, the pixel value (grey level) or RGB triple it comes from (None for
    index masks); ``source``: "detected" or the classes.yaml path."""

    kind: str
    decoding: MaskDecoding
    names: list[str]
    values: list[int | tuple[int, int, int] | None]
    source: str = "detected"

    def lines(self) -> list[str]:
        """One line per class: ``id name <- value``."""
        out = []
        for i, (name, value) in enumerate(zip(self.names, self.values, strict=True)):
            if value is None:
                shown = " <- any other value" if self.decoding.default_class == i else ""
            else:
                shown = f" <- {'grey ' if isinstance(value, int) else 'RGB '}{value}"
            out.append(f"{i} {name}{shown}")
        return out

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source,
                "classes": [{"id": i, "name": n, "value": list(v) if isinstance(v, tuple) else v}
                            for i, (n, v) in enumerate(zip(self.names, self.values, strict=True))]}


def _colour_keys(raw: np.ndarray) -> np.ndarray | None:
    """(H, W) uint32 RGB keys for a colour mask, None for a single-channel (or equal-RGB) mask."""
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):
        rgb = raw[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return None
        rgb = rgb.astype(np.uint32)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return None


def _key_rgb(key: int) -> tuple[int, int, int]:
    return (int(key) >> 16, (int(key) >> 8) & 255, int(key) & 255)


def _too_many(path: Path, n: int, what: str) -> UserError:
    return UserError(
        f"{path}: expected at most {MAX_LEVELS} distinct {what} (one per class), found {n} "
        "(anti-aliased edges or lossy compression?); re-export the mask without anti-aliasing "
        "(nearest-neighbour, PNG), or list the classes in classes.yaml (a '{name: ..., default: true}' "
        "entry takes every colour not listed, e.g. classes drawn over the micrograph)"
    )


def infer_mask_mapping(paths: list[Path], read: Callable[[Path], np.ndarray], folder: Path) -> MaskMapping:
    """Detect the encoding of a folder's masks (all files looked at together).

    index (ids < 64, not 0/255 only) | binary 0/255 | grey levels (<= 16 values, increasing
    order -> ids) | RGB colours (<= 16 colours; black, else the most common colour, = background,
    the rest in RGB order). ``folder/classes.yaml`` overrides it (see :func:`load_classes_yaml`).
    JPEG masks and anti-aliased masks raise a :class:`UserError` naming the file.
    """
    lossy = [p for p in paths if p.suffix.lower() in LOSSY_SUFFIXES]
    if lossy:
        raise UserError(*[f"{p}: expected a lossless mask (PNG, TIFF, BMP), found JPEG, whose compression "
                          "invents new values at edges; re-export the mask as PNG" for p in lossy])
    # an explicit classes.yaml decides before any scan, so anti-aliased masks (more colours than classes,
    # e.g. drawings over the micrograph) decode through its table and its `default: true` class
    override = load_classes_yaml(folder / "classes.yaml")
    if override is not None:
        return override
    grey_values: dict[int, int] = {}
    colours: dict[int, int] = {}
    for path in paths:
        raw = read(path)
        keys = _colour_keys(raw)
        if keys is not None:
            found, counts = np.unique(keys, return_counts=True)
            for k, c in zip(found.tolist(), counts.tolist(), strict=True):
                colours[k] = colours.get(k, 0) + c
            if len(colours) > MAX_LEVELS:
                raise _too_many(path, len(colours), "colours")
            continue
        grey = raw[..., 0] if raw.ndim == 3 else raw
        if not np.issubdtype(grey.dtype, np.integer):
            if not np.all(np.isfinite(grey)) or not np.array_equal(grey, np.round(grey)):
                raise UserError(f"{path}: expected integer class ids or grey levels in the mask, found dtype {grey.dtype}")
            grey = grey.astype(np.int64)
        found, counts = np.unique(grey, return_counts=True)
        for v, c in zip(found.tolist(), counts.tolist(), strict=True):
            grey_values[int(v)] = grey_values.get(int(v), 0) + c
        if min(grey_values) < 0:
            raise UserError(f"{path}: expected non-negative mask values, found {min(grey_values)}")
    if colours and grey_values:
        # equal-RGB masks next to colour masks: their grey levels are colours too
        for v, c in grey_values.items():
            key = (v << 16) | (v << 8) | v
            colours[key] = colours.get(key, 0) + c
        grey_values = {}
    if colours:
        if len(colours) > MAX_LEVELS:
            raise _too_many(folder / "masks", len(colours), "colours")
        background = 0 if 0 in colours else max(colours, key=lambda k: (colours[k], -k))
        order = [background] + sorted(k for k in colours if k != background)
        entries = [{"rgb": _key_rgb(k), "class_id": i} for i, k in enumerate(order)]
        names = ["background"] + [f"class_{i}" for i in range(1, len(order))]
        return MaskMapping("colour", MaskDecoding(kind="rgb", colours=entries), names, [_key_rgb(k) for k in order])
    values = sorted(grey_values)
    if set(values) <= {0, 255} and 255 in grey_values:
        return MaskMapping("binary", MaskDecoding(kind="binary"), ["background", "foreground"], [0, 255])
    if values[-1] < 64:
        k = max(2, values[-1] + 1)
        names = ["background", "foreground"] if k == 2 else ["background"] + [f"class_{i}" for i in range(1, k)]
        return MaskMapping("index", MaskDecoding(kind="index"), names, [None] * k)
    if len(values) > MAX_LEVELS:
        raise _too_many(folder / "masks", len(values), "grey levels")
    entries = [{"rgb": (v, v, v), "class_id": i} for i, v in enumerate(values)]
    names = ["background"] + [f"class_{i}" for i in range(1, len(values))]
    return MaskMapping("grey", MaskDecoding(kind="rgb", colours=entries), names, values)


def load_classes_yaml(path: Path) -> MaskMapping | None:
    """Read a folder's ``classes.yaml`` (None when absent). Format, ids in list order::

        classes:
          - {name: matrix, value: 0}          # grey level (or index value)
          - {name: precipitate, value: 255}
          - {name: pore, rgb: [255, 0, 0]}    # colour masks
          - {name: matrix, default: true}     # every other value (at most one such entry)
    """
    if not path.is_file():
        return None
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path}: expected YAML, found a syntax error: {str(err).splitlines()[0]}") from None
    items = doc.get("classes") if isinstance(doc, dict) else None
    if not isinstance(items, list) or len(items) < 2:
        raise UserError(f"{path}: expected 'classes:' with a list of at least 2 entries, found {type(items).__name__}")
    names, values, entries = [], [], []
    default_class: int | None = None
    for i, item in enumerate(items):
        where = f"{path}: classes[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise UserError(f"{where}: expected {{name: ..., value: N}} or {{name: ..., rgb: [R, G, B]}}, found {item!r}")
        if item.get("default") is True and "rgb" not in item and "value" not in item:
            if default_class is not None:
                raise UserError(f"{where}: expected at most one 'default: true' class, found a second")
            default_class = i
            names.append(item["name"].strip())
            values.append(None)
            continue
        if "rgb" in item:
            rgb = item["rgb"]
            if not (isinstance(rgb, list) and len(rgb) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in rgb)):
                raise UserError(f"{where}.rgb: expected [R, G, B] with 0..255 integers, found {rgb!r}")
            value: int | tuple[int, int, int] = tuple(rgb)
        elif isinstance(item.get("value"), int) and 0 <= item["value"] <= 255:
            value = int(item["value"])
        else:
            raise UserError(f"{where}.value: expected an integer grey level 0..255 (or rgb), found {item.get('value')!r}")
        if value in values:
            raise UserError(f"{where}: expected each value once, found {value!r} again")
        names.append(item["name"].strip())
        values.append(value)
        entries.append({"rgb": value if isinstance(value, tuple) else (value, value, value), "class_id": i})
    kind = "colour" if any(isinstance(v, tuple) for v in values) else "grey"
    decoding = MaskDecoding(kind="rgb", colours=entries, default_class=default_class)
    return MaskMapping(kind, decoding, names, values, source=str(path))


# --- the mapping as text and as a record saved next to the results -----------------------------

def mask_mapping_lines(manifest) -> list[str]:
    """``id name <- pixel value(s)`` per class, from a manifest's mask decoding."""
    names = [c.name for c in sorted(manifest.classes, key=lambda c: c.id)]
    spec = manifest.mask
    if spec.kind == "binary":
        return [f"{i} {n} <- {v}" for i, (n, v) in enumerate(zip(names, ("0", "1 or 255"), strict=False))]
    if spec.kind == "rgb":
        by_id: dict[int, list[str]] = {}
        for e in spec.colours:
            r, g, b = e.rgb
            by_id.setdefault(e.class_id, []).append(f"grey {r}" if r == g == b else f"RGB ({r},{g},{b})")
        if spec.default_class is not None:
            by_id.setdefault(spec.default_class, []).append("any other colour")
        return [f"{i} {n} <- {', '.join(by_id.get(i, ['-']))}" for i, n in enumerate(names)]
    if spec.kind == "threshold":
        return [f"{spec.below} {names[spec.below]} <- value <= {spec.threshold}",
                f"{spec.above} {names[spec.above]} <- value > {spec.threshold}"]
    return [f"{i} {n} <- {i}" for i, n in enumerate(names)]


def mask_mapping_record(ds) -> dict:
    """JSON record of which mask value became which class id, for ``<loop>/data/<dataset>.classes.json``:
    ``dataset``, ``kind`` (index | binary | grey | colour | threshold | rgb), ``source`` ("detected",
    the classes.yaml path, or "manifest"), ``classes`` [{id, name, value}] (value: grey level, [R, G,
    B], or None when the manifest's table gives several) and ``lines`` as printed by ``data check``."""
    mapping = getattr(ds, "mask_mapping", None)
    manifest = ds.manifest
    if mapping is not None:
        record = mapping.to_dict()
    else:
        spec = manifest.mask
        values: dict[int, list] = {}
        for e in spec.colours:
            values.setdefault(e.class_id, []).append(list(e.rgb))
        classes = []
        for c in sorted(manifest.classes, key=lambda c: c.id):
            value = {"index": c.id, "binary": 0 if c.id == 0 else [1, 255]}.get(spec.kind, values.get(c.id))
            classes.append({"id": c.id, "name": c.name, "value": value})
        record = {"kind": spec.kind, "source": "manifest", "classes": classes}
        if spec.kind == "rgb" and spec.default_class is not None:
            record["default_class"] = spec.default_class
    return {"dataset": ds.name, **record, "lines": mask_mapping_lines(manifest)}
