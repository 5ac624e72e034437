"""Context descriptors of a dataset (docs/compare.md, "Descriptors").

All intensity descriptors use the grey image (mean over channels). ``rms_contrast`` and ``michelson``
use intensities divided by the dtype maximum (8-bit: 255, 16-bit: 65535; float: the image maximum);
``separability`` (between-class / total intensity variance, 0..1) and ``cnr`` use percentile-normalised
intensities. With masks, classes come from the masks. Without masks (a plain folder of images) the
structure is the minority phase of an Otsu threshold of the Gaussian-smoothed (sigma 1 px) image, with
components under 4 px removed; mask-based descriptors (foreground fraction, imbalance) are then None.

Feature sizes are measured in pixels; where every image used has a known pixel size (the manifest's
``pixel_size_um`` or the file's calibration, :meth:`matseg_nb.data.Dataset.pixel_size_um_of`) they are
also given in µm (``*_um``, each image converted with its own pixel size); otherwise the ``*_um``
fields are None and a note says the sizes are in px only. The difficulty thresholds stay in pixels
(what a network sees).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, segmentation

from matseg_nb.errors import UserError

DIFFICULTY_LEVELS = ("Easy", "Moderate", "Hard", "Very Hard")
LOW_SEPARABILITY = 0.75   # separability below this = low contrast
HEAVY_IMBALANCE = 0.05    # smallest foreground class below this pixel fraction = heavy imbalance
FINE_WIDTH_PX = 4.0       # mean feature width below this (px) = fine / thin features
MIN_OTSU_COMPONENT_PX = 4


@dataclass
class Descriptors:
    """Context of one dataset; None = unknown. Sizes in pixels (``*_px``) and, where the pixel size is
    known for every image used, in micrometres (``*_um``); fractions in 0..1."""

    name: str
    modality: str | None = None
    material: str | None = None
    declared_difficulty: str | None = None
    is_volume: bool = False
    bit_depth: int | None = None
    n_images_used: int = 0
    has_masks: bool = False
    structure_source: str = "masks"          # masks | otsu
    rms_contrast: float | None = None
    michelson: float | None = None
    separability: float | None = None
    cnr: float | None = None
    foreground_fraction: float | None = None
    minority_fraction: float | None = None
    imbalance_ratio: float | None = None
    feature_diameter_median_px: float | None = None
    feature_diameter_iqr_px: tuple[float, float] | None = None
    n_features: int = 0
    boundary_density: float | None = None
    feature_width_px: float | None = None   # 2 * area / boundary of the finest foreground class
    pixel_size_um: float | None = None      # median edge of a pixel over the images used; None = unknown
    pixel_size_spread: float | None = None  # max / min pixel size of the images used, minus 1
    feature_diameter_median_um: float | None = None
    feature_diameter_iqr_um: tuple[float, float] | None = None
    feature_width_um: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    # -- derived flags (None = unknown) ------------------------------------------------
    @property
    def low_contrast(self) -> bool | None:
        return None if self.separability is None else self.separability < LOW_SEPARABILITY

    @property
    def heavy_imbalance(self) -> bool | None:
        return None if self.minority_fraction is None else self.minority_fraction < HEAVY_IMBALANCE

    @property
    def fine_features(self) -> bool | None:
        return None if self.feature_width_px is None else self.feature_width_px < FINE_WIDTH_PX


def estimate_difficulty(d: Descriptors) -> tuple[str, list[str]]:
    """One point each for low contrast, heavy imbalance, fine features and a volume:
    0 Easy, 1 Moderate, 2 Hard, >= 3 Very Hard. Returns the level and the reasons."""
    checks = [
        (d.low_contrast, f"low contrast (separability {_f(d.separability)} < {LOW_SEPARABILITY})",
         f"clear contrast (separability {_f(d.separability)})"),
        (d.heavy_imbalance, f"heavy class imbalance (smallest class {_pct(d.minority_fraction)} < "
         f"{HEAVY_IMBALANCE:.0%})", f"balanced enough (smallest class {_pct(d.minority_fraction)})"),
        (d.fine_features, f"fine/thin features (mean width {_f(d.feature_width_px, 1)} px{_um(d.feature_width_um)} "
         f"< {FINE_WIDTH_PX:g} px)", f"coarse features (mean width {_f(d.feature_width_px, 1)} px{_um(d.feature_width_um)})"),
        (d.is_volume, "volumetric data", "2-D images"),
    ]
    points, reasons = 0, []
    for flag, yes, no in checks:
        if flag is None:
            continue
        points += int(bool(flag))
        reasons.append(yes if flag else no)
    return DIFFICULTY_LEVELS[min(points, 3)], reasons


def _f(x: float | None, digits: int = 2) -> str:
    return "unknown" if x is None else f"{x:.{digits}f}"


def _um(x: float | None) -> str:
    """`` = 1.2 µm`` when a size in µm is known, else nothing (the size is stated in px only)."""
    if x is None:
        return ""
    from matseg_nb.figures import format_length

    return f" = {format_length(float(f'{x:.3g}'))}"


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:.2f}%"


# -- image sources ---------------------------------------------------------------------------------
@dataclass
class _Item:
    image: np.ndarray        # (C, H, W) float32, native units
    mask: np.ndarray | None  # (H, W) int64
    raw_max: float
    pixel_size_um: float | None = None


def _dtype_max(path: Path, img: np.ndarray) -> tuple[float, int | None]:
    from matseg_nb.data import read_array

    try:
        raw = read_array(path)
    except Exception:  # noqa: BLE001 - bit depth is informative only
        return float(np.nanmax(img)) or 1.0, None
    if raw.dtype == bool:
        return 1.0, 1
    if np.issubdtype(raw.dtype, np.integer):
        return float(np.iinfo(raw.dtype).max), raw.dtype.itemsize * 8
    return float(np.nanmax(img)) or 1.0, raw.dtype.itemsize * 8


def _pick(n: int, k: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, num=min(n, k)).round().astype(int).tolist())) if n else []


def _from_dataset(ds, max_images: int) -> tuple[list[_Item], Descriptors]:
    # train + val only: the test split must not inform the recommendation that is later scored on it
    samples = ds.samples("train") + ds.samples("val") or ds.samples()
    chosen = [samples[i] for i in _pick(len(samples), max_images)]
    items = []
    bits = None
    for s in chosen:
        img = ds.load_image(s)
        dmax, b = _dtype_max(s.image, img)
        bits = bits or b
        mask = ds.load_mask(s) if s.mask is not None else None
        items.append(_Item(img, mask, dmax, ds.pixel_size_um_of(s)))
    desc = Descriptors(
        name=ds.name, modality=ds.modality if ds.modality != "other" else None,
        material=None if getattr(ds, "material", "other") in ("", "other") else ds.material,
        declared_difficulty=getattr(ds, "difficulty", None),
        is_volume=any(s.slice_index is not None for s in samples), bit_depth=bits,
    )
    return items, desc


def _from_image_folder(root: Path, max_images: int) -> tuple[list[_Item], Descriptors]:
    from matseg_nb.data import read_image
    from matseg_nb.data.formats import file_pixel_size_um
    from matseg_nb.data.readers import IMAGE_SUFFIXES

    folder = root / "images" if (root / "images").is_dir() else root
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"{root}: expected image files ({', '.join(sorted(IMAGE_SUFFIXES))}), found none")
    items = []
    bits = None
    for i in _pick(len(files), max_images):
        img = read_image(files[i])
        dmax, b = _dtype_max(files[i], img)
        bits = bits or b
        items.append(_Item(img, None, dmax, file_pixel_size_um(files[i])))
    return items, Descriptors(name=root.name, bit_depth=bits)


def _open(ref, max_images: int) -> tuple[list[_Item], Descriptors]:
    """A manifest name/path or a folder with images/+masks/ via open_dataset; other folders as images."""
    from matseg_nb.data import open_dataset

    path = Path(str(ref))
    if path.is_dir() and not (path / "masks").is_dir():
        return _from_image_folder(path, max_images)
    return _from_dataset(open_dataset(ref), max_images)


# -- per-image measurements --------------------------------------------------------------------------
def _grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64).mean(axis=0)


def _percentile_norm(g: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(g, [0.5, 99.5])
    return np.clip((g - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(g)


def _otsu_labels(g01: np.ndarray) -> np.ndarray:
    """0/1 map of the minority phase of an Otsu threshold (smoothed, small specks removed)."""
    sm = ndi.gaussian_filter(g01, 1.0)
    if sm.max() - sm.min() < 1e-9:
        return np.zeros(g01.shape, dtype=np.int64)
    fg = sm > filters.threshold_otsu(sm)
    if fg.mean() > 0.5:
        fg = ~fg
    fg = morphology.remove_small_objects(fg, max_size=MIN_OTSU_COMPONENT_PX - 1)
    return fg.astype(np.int64)


def _separability(g01: np.ndarray, labels: np.ndarray) -> float | None:
    total = g01.var()
    if total <= 0:
        return None
    between = sum((labels == c).mean() * (g01[labels == c].mean() - g01.mean()) ** 2
                  for c in np.unique(labels))
    return float(between / total)


def _cnr(g01: np.ndarray, labels: np.ndarray) -> float | None:
    bg = g01[labels == 0]
    vals = []
    for c in np.unique(labels):
        if c == 0 or bg.size == 0:
            continue
        x = g01[labels == c]
        den = math.sqrt((x.var() + bg.var()) / 2)
        vals.append(abs(x.mean() - bg.mean()) / den if den > 0 else math.inf)
    return float(min(vals)) if vals else None


def _features(labels: np.ndarray) -> tuple[list[float], dict[int, tuple[int, int]], int]:
    """Equivalent diameters (px) of connected components of every foreground class, per-class
    (pixels, inner-boundary pixels), and class-boundary pixels of the whole label map."""
    diam: list[float] = []
    per_class: dict[int, tuple[int, int]] = {}
    for c in np.unique(labels):
        if c == 0:
            continue
        region = labels == c
        lab = measure.label(region, connectivity=2)
        areas = np.bincount(lab.ravel())[1:]
        diam += np.sqrt(4 * areas[areas > 0] / np.pi).tolist()
        per_class[int(c)] = (int(region.sum()), int(segmentation.find_boundaries(region, mode="inner").sum()))
    boundary = int(segmentation.find_boundaries(labels, mode="inner").sum())
    return diam, per_class, boundary


def _manifest_only(ref, err: UserError) -> Descriptors:
    """Descriptors from the manifest alone when its files are absent (image descriptors unknown)."""
    from matseg_nb.data import load_manifest

    try:
        m = load_manifest(ref)
    except (UserError, OSError, ValueError):
        raise err from None
    return Descriptors(
        name=m.name, modality=None if m.modality == "other" else m.modality,
        material=m.material.text or (None if m.material.class_ == "other" else m.material.class_),
        declared_difficulty=m.difficulty, is_volume=m.volume is not None, has_masks=False, structure_source="none",
        notes=[f"image files not available ({err.problems[0]}); context from the manifest only"],
    )


def compute_descriptors(ref, max_images: int = 6) -> Descriptors:
    """Descriptors of a dataset (manifest name | manifest path | folder with images/ + masks/ |
    folder of images). Uses up to ``max_images`` evenly spaced images of the train and val splits (never test). A manifest whose
    files are absent gives its metadata only (modality, material, declared difficulty, volume)."""
    try:
        items, desc = _open(ref, max_images)
    except UserError as err:
        return _manifest_only(ref, err)
    desc.n_images_used = len(items)
    desc.has_masks = all(it.mask is not None for it in items)
    desc.structure_source = "masks" if desc.has_masks else "otsu"
    rms, mich, sep, cnr, diam = [], [], [], [], []
    counts: dict[int, int] = {}
    widths: dict[int, list[int]] = {}
    widths_um: dict[int, list[float]] = {}  # per class: [area µm², boundary µm]
    diam_um: list[float] = []
    calibrated = bool(items) and all(it.pixel_size_um for it in items)
    bd = total = 0
    for it in items:
        g = _grey(it.image)
        gd = g / it.raw_max
        rms.append(gd.std())
        p1, p99 = np.percentile(gd, [1, 99])
        mich.append((p99 - p1) / (p99 + p1) if p99 + p1 > 0 else 0.0)
        g01 = _percentile_norm(g)
        labels = it.mask if desc.has_masks else _otsu_labels(g01)
        for c, n in zip(*np.unique(labels, return_counts=True), strict=True):
            counts[int(c)] = counts.get(int(c), 0) + int(n)
        sep.append(_separability(g01, labels))
        cnr.append(_cnr(g01, labels))
        d, per_class, b = _features(labels)
        diam += d
        for c, (px, edge) in per_class.items():
            acc = widths.setdefault(c, [0, 0])
            acc[0], acc[1] = acc[0] + px, acc[1] + edge
        if calibrated:
            size = float(it.pixel_size_um)
            diam_um += [v * size for v in d]
            for c, (px, edge) in per_class.items():
                acc_um = widths_um.setdefault(c, [0.0, 0.0])
                acc_um[0], acc_um[1] = acc_um[0] + px * size**2, acc_um[1] + edge * size
        bd, total = bd + b, total + labels.size
    desc.rms_contrast = float(np.mean(rms))
    desc.michelson = float(np.mean(mich))
    seps = [s for s in sep if s is not None]
    desc.separability = float(np.mean(seps)) if seps else None
    cnrs = [c for c in cnr if c is not None and math.isfinite(c)]
    desc.cnr = float(np.median(cnrs)) if cnrs else None
    if desc.has_masks and total:
        fracs = {c: n / total for c, n in counts.items()}
        fg_fracs = [v for c, v in fracs.items() if c > 0]
        desc.foreground_fraction = float(sum(fg_fracs))
        desc.minority_fraction = float(min(fg_fracs)) if fg_fracs else 0.0
        desc.imbalance_ratio = float(max(fracs.values()) / min(fracs.values()))
    if diam:
        q25, q50, q75 = np.percentile(diam, [25, 50, 75])
        desc.feature_diameter_median_px = float(q50)
        desc.feature_diameter_iqr_px = (float(q25), float(q75))
        desc.n_features = len(diam)
    desc.boundary_density = float(bd / total) if total else None
    class_widths = [2 * px / edge for px, edge in widths.values() if edge]
    desc.feature_width_px = float(min(class_widths)) if class_widths else None
    known = [it.pixel_size_um for it in items if it.pixel_size_um]
    if known:
        desc.pixel_size_um = float(np.median(known))
        desc.pixel_size_spread = float(max(known) / min(known) - 1)
    if calibrated:
        if diam_um:
            q25, q50, q75 = np.percentile(diam_um, [25, 50, 75])
            desc.feature_diameter_median_um = float(q50)
            desc.feature_diameter_iqr_um = (float(q25), float(q75))
        finest = min((c for c, (px, edge) in widths.items() if edge), key=lambda c: widths[c][0] / widths[c][1],
                     default=None)  # the class feature_width_px is measured on
        if finest is not None:
            area, edge = widths_um[finest]
            desc.feature_width_um = float(2 * area / edge)
        desc.notes.append(f"feature sizes in µm from the pixel size ({desc.pixel_size_um:.4g} µm"
                          + (f", spread {100 * desc.pixel_size_spread:.0f}%" if desc.pixel_size_spread else "") + ")")
    elif items:
        desc.notes.append(f"pixel size unknown ({len(known)} of {len(items)} images calibrated): feature sizes "
                          "in px only")
    if not desc.has_masks:
        desc.notes.append("no masks: foreground fraction and imbalance unknown; feature size and boundary "
                          "density from an Otsu threshold (minority phase)")
    return desc
