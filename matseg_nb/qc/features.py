"""Pluggable offline feature extractors for QC, applied to tiles (crops) of one image.

An extractor is built by ``make_extractor(name, ctx)`` and called as ``f(item, boxes) -> (T, F)``
float64, where ``item`` is an :class:`ImageItem` (native image, optional prediction) and ``boxes``
is a list of T ``(top, left, size)`` square crops. Registry :data:`EXTRACTORS`:

* ``encoder``     trained segmentation encoder: global average pool of every encoder stage, concatenated;
* ``timm:<name>`` timm backbone with LOCAL weights only (``timm:<name>@/path/weights.pth`` or the HF cache);
* ``texture``     model-free: intensity statistics (dtype-normalised), GLCM, LBP histogram, sharpness;
* ``morphology``  predicted-mask morphology (prediction level);
* ``softmax``     softmax confidence statistics of the prediction (prediction level).

:func:`combine` standardises each extractor's block with reference statistics before concatenating.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from matseg_nb.errors import UserError

Box = tuple[int, int, int]  # (top, left, size) in pixels


@dataclass
class ImageItem:
    """One image: ``image`` (C, H, W) float32 native intensities; ``probs`` (K, H, W) softmax or None;
    ``pred`` (H, W) int64 predicted class ids or None; ``name`` for tables."""

    image: np.ndarray
    name: str = ""
    probs: np.ndarray | None = None
    pred: np.ndarray | None = None
    mask: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class FeatureContext:
    """What extractors may need: the segmentation model, its input normalisation, class count."""

    model: torch.nn.Module | None = None
    normalization: str = "percentile"
    num_classes: int = 2
    device: str = "cpu"
    batch_size: int = 8


def tile_boxes(h: int, w: int, size: int, n: int, seed: int = 0) -> list[Box]:
    """``n`` random square crops of ``size`` px (clamped to the image), deterministic for ``seed``."""
    size = int(min(size, h, w))
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1)), size) for _ in range(n)]


def _crop(a: np.ndarray, box: Box) -> np.ndarray:
    t, left, s = box
    return a[..., t : t + s, left : left + s]


def _dtype_normalize(img: np.ndarray, full_scale: float | None = None) -> np.ndarray:
    """Intensities / full scale; ``full_scale`` from the file's dtype (255, 65535) when known
    (``ImageItem.meta['full_scale']``), else inferred from the values."""
    from matseg_nb.qc.shifts import native_max

    return np.asarray(img, dtype=np.float64) / (full_scale or native_max(img))


# ---------------------------------------------------------------- encoder / timm


def _pooled_stages(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    feats = encoder(x)
    if isinstance(feats, torch.Tensor):
        feats = [feats]
    # stage 0 of smp encoders is the input itself; pool the learned stages only
    stages = feats[1:] if len(feats) > 1 else feats
    return torch.cat([f.mean(dim=(2, 3)) for f in stages if f.ndim == 4 and f.shape[1] > 0], dim=1)


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], tiles: np.ndarray, ctx: FeatureContext) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, len(tiles), ctx.batch_size):
            x = torch.as_tensor(tiles[s : s + ctx.batch_size], dtype=torch.float32, device=ctx.device)
            out.append(fn(x).double().cpu().numpy())
    return np.concatenate(out, 0)


def _model_tiles(item: ImageItem, boxes: list[Box], ctx: FeatureContext, multiple: int = 32) -> np.ndarray:
    from matseg_nb.data import normalize_image

    norm = normalize_image(np.asarray(item.image, dtype=np.float32), ctx.normalization)
    tiles = np.stack([_crop(norm, b) for b in boxes])
    pad = (-tiles.shape[-1]) % multiple
    if pad:
        tiles = np.pad(tiles, ((0, 0), (0, 0), (0, pad), (0, pad)), mode="reflect")
    return tiles


def encoder_extractor(ctx: FeatureContext) -> Callable[[ImageItem, list[Box]], np.ndarray]:
    """Multi-scale pooled features of the trained segmentation model's encoder."""
    if ctx.model is None or not hasattr(ctx.model, "encoder"):
        raise UserError("extractor 'encoder': expected a segmentation model with .encoder (a run folder), found none")
    encoder = ctx.model.encoder.eval()
    return lambda item, boxes: _batched(lambda x: _pooled_stages(encoder, x), _model_tiles(item, boxes, ctx), ctx)


def timm_extractor(spec: str, ctx: FeatureContext) -> Callable[[ImageItem, list[Box]], np.ndarray]:
    """``timm:<name>[@weights.pth]``: pooled features of a timm backbone with local weights only."""
    import timm

    name, _, path = spec.partition(":")[2].partition("@")
    in_ch = 3
    try:
        if path:
            net = timm.create_model(name, pretrained=False, num_classes=0)
            from matseg_nb.models.weights import read_state_dict

            missing = net.load_state_dict(read_state_dict(path), strict=False).missing_keys
            if missing:
                raise UserError(f"extractor {spec}: weights file {path} lacks {len(missing)} keys, e.g. {missing[0]}")
        else:
            from matseg_nb.models.weights import offline_hub

            with offline_hub():
                net = timm.create_model(name, pretrained=True, num_classes=0)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any loading failure means "no local weights"
        raise UserError(
            f"extractor {spec}: expected local weights (HF cache or timm:{name}@/path/weights.pth), "
            f"found none ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
        ) from None
    net = net.eval().to(ctx.device)

    def run(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != in_ch:
            x = x.mean(1, keepdim=True).expand(-1, in_ch, -1, -1)
        return net(x)

    return lambda item, boxes: _batched(run, _model_tiles(item, boxes, ctx), ctx)


# ---------------------------------------------------------------- texture (model-free)

_GLCM_PROPS = ("contrast", "homogeneity", "energy", "correlation")
_GLCM_DIST = (1, 2, 4)
_GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
_LBP_P, _LBP_R = 8, 1


def texture_vector(tile: np.ndarray) -> np.ndarray:
    """Texture descriptor of a dtype-normalised (C, h, w) tile in [0, 1] -> (F,) float64.

    Intensity statistics (mean, std, 1/5/25/50/75/95/99th percentiles, skewness, kurtosis, fraction
    saturated at 0 and 1), GLCM contrast/homogeneity/energy/correlation at distances 1, 2, 4 px
    (averaged over 4 angles, 64 grey levels), uniform LBP histogram (P=8, R=1, 10 bins), mean
    gradient magnitude and mean |Laplacian| (sharpness / noise).
    """
    from scipy import ndimage, stats
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

    g = tile.mean(0)
    v = g.ravel()
    feats = [v.mean(), v.std(), *np.percentile(v, [1, 5, 25, 50, 75, 95, 99])]
    feats += [float(stats.skew(v)) if v.std() > 0 else 0.0, float(stats.kurtosis(v)) if v.std() > 0 else 0.0]
    feats += [float((v <= 0).mean()), float((v >= 1).mean())]
    q = np.clip((g * 64).astype(np.int64), 0, 63).astype(np.uint8)
    glcm = graycomatrix(q, _GLCM_DIST, _GLCM_ANGLES, levels=64, symmetric=True, normed=True)
    for p in _GLCM_PROPS:
        feats += list(np.nan_to_num(graycoprops(glcm, p)).mean(1))
    lbp = local_binary_pattern(q, _LBP_P, _LBP_R, method="uniform")
    feats += list(np.histogram(lbp, bins=_LBP_P + 2, range=(0, _LBP_P + 2), density=True)[0])
    feats += [float(np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1)).mean()), float(np.abs(ndimage.laplace(g)).mean())]
    return np.asarray(feats, dtype=np.float64)


def texture_extractor(ctx: FeatureContext) -> Callable[[ImageItem, list[Box]], np.ndarray]:
    """Model-free texture descriptor per tile (see :func:`texture_vector`)."""

    def run(item: ImageItem, boxes: list[Box]) -> np.ndarray:
        img = _dtype_normalize(item.image, item.meta.get("full_scale"))
        return np.stack([texture_vector(_crop(img, b)) for b in boxes])

    return run


# ---------------------------------------------------------------- prediction level


def morphology_vector(pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Predicted-mask morphology of an (h, w) tile of class ids -> (num_classes * 8,) float64.

    Per class: area fraction, connected components per 10^4 px, mean/std of log10 component area,
    boundary length per class area (px/px), mean solidity and mean eccentricity (over the 100 largest
    components, bounded cost), largest-component share.
    """
    from skimage.measure import label, perimeter, regionprops

    out = []
    area = pred.size
    for c in range(num_classes):
        m = pred == c
        a = float(m.sum())
        if a == 0:
            out += [0.0] * 8
            continue
        lab = label(m, connectivity=1)
        props = regionprops(lab)
        sizes = np.array([p.area for p in props], dtype=float)
        logs = np.log10(sizes)
        big = [props[i] for i in np.argsort(-sizes)[:100]]
        out += [
            a / area,
            len(props) / area * 1e4,
            float(logs.mean()),
            float(logs.std()),
            float(perimeter(m)) / a,
            float(np.mean([p.solidity for p in big])),
            float(np.mean([p.eccentricity for p in big])),
            float(sizes.max() / a),
        ]
    return np.asarray(out, dtype=np.float64)


def morphology_extractor(ctx: FeatureContext) -> Callable[[ImageItem, list[Box]], np.ndarray]:
    """Morphology of the predicted mask per tile (needs ``item.pred``)."""

    def run(item: ImageItem, boxes: list[Box]) -> np.ndarray:
        if item.pred is None:
            raise ValueError(f"extractor 'morphology': image {item.name} has no prediction")
        return np.stack([morphology_vector(_crop(item.pred, b), ctx.num_classes) for b in boxes])

    return run


def softmax_vector(probs: np.ndarray) -> np.ndarray:
    """Confidence statistics of a (K, h, w) softmax tile -> (K + 8,): per-class mean probability,
    mean/5th/50th percentile of max-probability, mean/95th percentile of normalised entropy,
    fraction of pixels with max-prob < 0.5 / < 0.9, mean margin top1 - top2."""
    k = probs.shape[0]
    p = np.clip(probs.reshape(k, -1).astype(np.float64), 1e-12, 1.0)
    top = np.sort(p, 0)
    mx = top[-1]
    ent = -(p * np.log(p)).sum(0) / np.log(max(k, 2))
    margin = top[-1] - top[-2] if k > 1 else mx
    return np.r_[p.mean(1), mx.mean(), np.percentile(mx, 5), np.median(mx), ent.mean(), np.percentile(ent, 95),
                 (mx < 0.5).mean(), (mx < 0.9).mean(), margin.mean()]


def softmax_extractor(ctx: FeatureContext) -> Callable[[ImageItem, list[Box]], np.ndarray]:
    """Softmax confidence statistics per tile (needs ``item.probs``)."""

    def run(item: ImageItem, boxes: list[Box]) -> np.ndarray:
        if item.probs is None:
            raise ValueError(f"extractor 'softmax': image {item.name} has no softmax prediction")
        return np.stack([softmax_vector(_crop(item.probs, b)) for b in boxes])

    return run


#: extractor name -> factory(ctx) -> f(item, boxes) -> (T, F); ``timm:<name>`` is resolved separately.
EXTRACTORS: dict[str, Callable[[FeatureContext], Callable]] = {
    "encoder": encoder_extractor,
    "texture": texture_extractor,
    "morphology": morphology_extractor,
    "softmax": softmax_extractor,
}

#: which extractors each QC level uses besides the user's input-level ones.
PREDICTION_EXTRACTORS = ("morphology", "softmax")


def make_extractor(name: str, ctx: FeatureContext) -> Callable[[ImageItem, list[Box]], np.ndarray]:
    """Build a registered extractor (or ``timm:<name>``); unknown names raise UserError."""
    if name.startswith("timm:"):
        return timm_extractor(name, ctx)
    if name not in EXTRACTORS:
        raise UserError(f"extractor: expected one of {sorted(EXTRACTORS)} or timm:<name>, found {name!r}")
    return EXTRACTORS[name](ctx)


class Combiner:
    """Per-extractor standardisation fitted on reference features, then concatenation.

    Each block is z-scored per column and divided by sqrt(n_columns), so every extractor contributes
    equal expected squared distance regardless of its dimension (Forte combines encoders similarly
    by concatenating PRDC blocks; see docs/qc.md).
    """

    def fit(self, blocks: dict[str, np.ndarray]) -> Combiner:
        self.stats = {}
        for k, b in blocks.items():
            sd = b.std(0)
            sd[sd < 1e-12] = 1.0
            self.stats[k] = (b.mean(0), sd * np.sqrt(b.shape[1]))
        return self

    def transform(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([(blocks[k] - m) / s for k, (m, s) in self.stats.items()], axis=1)
