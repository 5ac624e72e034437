"""The model as a batched probability function: padded to the decoder's multiple, softmax, cropped.

``ProbFn(model)(x)`` maps a batch (B, C, H, W) float32 to class probabilities (B, K, H, W)
float32. A single-logit (binary) model gives K = 2 as ``[1 - sigmoid, sigmoid]``. Inputs are
reflect-padded at the bottom/right to a multiple of ``multiple`` px (default: the model's
``matseg_nb.models.pad_multiple``, at least 32) and outputs are cropped back, so any image size works with every decoder.
"""

from __future__ import annotations

import contextlib

import torch

from matseg_nb.explain.boxes import Box, area
from matseg_nb.explain.fused import Fused, SkipHalves, fuse_for_explain, skip_cache_applies
from matseg_nb.explain.incremental import IncrementalEncoder, has_squeeze_excitation, supports_incremental
from matseg_nb.explain.scaled import input_map_for
from matseg_nb.explain.shortcuts import box_decoder_for, levels_halve
from matseg_nb.models import pad_multiple, pad_to_multiple


def pad_batch(x: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom/right to a multiple of ``multiple``; returns (padded, (H, W)).

    Uses ``matseg_nb.models.pad_to_multiple`` (reflect when possible, else replicate)."""
    return pad_to_multiple(x, multiple), (int(x.shape[-2]), int(x.shape[-1]))


def to_probs(logits: torch.Tensor) -> torch.Tensor:
    """Logits (B, K, H, W) -> probabilities; K = 1 (binary) becomes 2 channels [1 - p, p]."""
    logits = logits.float()
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1.0 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


BOX_DECODER_MAX_FRACTION = 0.5  # of the padded image's area: larger crops run the whole decoder


class ProbFn:
    """Batched, padded, no-autograd probability function of a segmentation model.

    ``amp`` (fp16 autocast on CUDA, bf16 on CPU) is off by default on every device: float32 keeps the
    noise floor (about |A| x 1e-3 in fp16) far below H; pass ``amp=True`` explicitly to trade it for speed;
    ``channels_last`` defaults to True (1.5x faster convolutions on this CPU, same numbers to
    float32 rounding; :func:`heatmap_literal` / :func:`heatmap_captum` use plain NCHW); ``crop`` =
    (y0, y1, x0, x1) restricts the returned probabilities to a box (px) to save memory.
    ``shortcuts`` (default True) enables the exact rules where the model allows: the decoder on the
    crop box only (:mod:`.shortcuts`: UNet; :mod:`.deeplab_box`: DeepLabV3/V3+), and, after
    :meth:`prepare`, the incremental encoder (:mod:`.incremental`) for batches whose images differ from
    the prepared one inside given windows. Its cache of the prepared image's block outputs (about
    0.5 kB per pixel for ResNet50 in float32) is skipped, with a note in ``cache_note``, when it would
    exceed ``cache_mb``. ``incremental`` defaults to True except on CUDA, where large batches of whole
    encoder passes keep a GPU busy while the incremental encoder's many small crops are launch-bound
    (an estimate: ``benchmarks/gpu.sh`` times both). ``se_mode`` for encoders with squeeze-excitation
    blocks: ``"approximate"`` (default) runs the incremental encoder with each SE scale recomputed from the
    updated mean (:mod:`.squeeze_excite`; not exact: :func:`matseg_nb.explain.heatmap.heatmap` measures its
    error against whole passes and falls back to them past its tolerance); ``"exact"``: whole encoder
    passes (the box decoder still applies: exact). With ``shortcuts`` every pass runs on ``fused``, an exact
    faster copy of the model built once (:mod:`.fused`: BatchNorm folded into the convolutions, polyphase
    nearest-upsampling convolutions in smp UNet decoders); ``model`` stays the model given. After
    :meth:`prepare`, whole-decoder passes of such a UNet also take each block's skip convolution from the
    prepared image outside the incremental encoder's changed boxes (:class:`.fused.SkipHalves`).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None,
                 amp: bool | None = None, channels_last: bool | None = None, multiple: int | None = None,
                 shortcuts: bool = True, cache_mb: float = 4096, incremental: bool | None = None,
                 se_mode: str = "approximate"):
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.amp = bool(amp)  # None -> False: fp32 unless AMP is asked for
        self.channels_last = True if channels_last is None else bool(channels_last)
        self.pad_multiple = int(multiple or max(32, pad_multiple(model)))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt).eval()
        self.fused: Fused | None = fuse_for_explain(self.model, memory_format=fmt) if shortcuts else None
        run = self.fused.model if self.fused is not None else self.model  # what every pass runs
        self.input_map = input_map_for(run) if shortcuts else None  # e.g. the input_scale wrapper
        self.core = self.input_map.inner if self.input_map is not None else run  # what the rules see
        plain = bool(shortcuts) and _plain_forward(self.core)
        self._box_dec = box_decoder_for(self.core) if plain else None
        self.box_decoder = self._box_dec is not None
        on = self.device.type != "cuda" if incremental is None else bool(incremental)
        if se_mode not in ("approximate", "exact"):
            raise ValueError(f"se_mode: expected 'approximate' or 'exact', found {se_mode!r}")
        self.se_mode = se_mode
        self.incremental = plain and on and supports_incremental(self.core, approximate=se_mode == "approximate")
        self.approximate = self.incremental and has_squeeze_excitation(self.core)  # not exact: checked
        self.cache_mb = float(cache_mb)
        self.cache_note = ""
        self.used_box_decoder = False  # whether the last call ran a decoder on its crop box
        self._cache: IncrementalEncoder | None = None
        self._skips: SkipHalves | None = None  # the fused UNet's skip halves for the prepared image
        self.se_work: dict[tuple, float] = {}  # (input shape, window) -> work fraction (approximate mode)
        self.shortcut_notes = _why_not(self.core, bool(shortcuts), plain, self.box_decoder, self.incremental, on,
                                       se_mode)

    def exact(self) -> ProbFn:
        """The same function with exact rules only (``self`` when it has no approximate one; built once)."""
        if not self.approximate:
            return self
        if getattr(self, "_exact", None) is None:
            self._exact = ProbFn(self.model, device=self.device, amp=self.amp, channels_last=self.channels_last,
                                 multiple=self.pad_multiple, cache_mb=self.cache_mb, incremental=self.incremental,
                                 se_mode="exact")
        return self._exact

    def _padded(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        xp, hw = pad_batch(x.to(self.device, torch.float32), self.pad_multiple)
        return (xp.contiguous(memory_format=torch.channels_last) if self.channels_last else xp), hw

    def prepare(self, x: torch.Tensor | None) -> None:
        """Cache the encoder's block outputs for x (1, C, H, W) for later ``windows=`` calls (no-op when the
        incremental rule does not apply or the cache would exceed ``cache_mb``); ``None`` drops the cache."""
        self._cache, self._skips, self.cache_note = None, None, ""
        if self.incremental and x is not None:
            with torch.inference_mode(), self._autocast():
                xp = self._padded(x)[0]
                if self.input_map is not None:
                    xp = self.input_map.resample(xp)
                mb = IncrementalEncoder.bytes_per_pixel(self.core.encoder, xp) * xp.shape[-2] * xp.shape[-1] / 2**20
                if mb > self.cache_mb:
                    self.cache_note = (f"incremental encoder off: its cache would take {mb:.0f} MB "
                                       f"> cache_mb = {self.cache_mb:.0f}")
                    return
                self._cache = IncrementalEncoder(self.core.encoder, xp, approximate=self.approximate)
                shapes = self._cache.level_shapes()
                if skip_cache_applies(self.core, len(shapes)) and levels_halve(shapes):
                    levels = [xp] + [self._cache.outs[self._cache.level_unit[lv]] for lv in range(1, len(shapes))]
                    self._skips = SkipHalves(self.core, levels)

    @property
    def cached(self) -> bool:
        """True while a :meth:`prepare` cache is in use."""
        return self._cache is not None

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def __call__(self, x: torch.Tensor, crop: Box | None = None, windows: list[Box] | None = None) -> torch.Tensor:
        """(B, C, H, W) -> probabilities (B, K, H, W) float32 (or the ``crop`` box of them).

        ``windows``: per image, the box (px) outside which it equals the image given to :meth:`prepare`."""
        with torch.inference_mode():
            xp, (h, w) = self._padded(x)
            full = (int(xp.shape[-2]), int(xp.shape[-1]))
            box = crop if crop is not None else (0, h, 0, w)
            wins = None if windows is None else [_padded_window(b, (h, w), full) for b in windows]
            with self._autocast():
                if self.input_map is None:
                    return to_probs(self._core_logits(xp, box, wins, crop is not None))
                im = self.input_map
                xin = im.resample(xp)
                inner = (int(xin.shape[-2]), int(xin.shape[-1]))
                read = im.reads(box, full, inner)
                wins_in = None if wins is None else [im.window(b, full, inner) for b in wins]
                return to_probs(im.upsample(self._core_logits(xin, read, wins_in, True), read, inner, full, box))

    @property
    def shortcut_names(self) -> list[str]:
        """The exact shortcuts this function applies (for the heatmap's line), outermost first."""
        names = [self.input_map.name] if self.input_map is not None else []
        if self.fused is not None and self.fused.name:
            names.append(self.fused.name)
        if self.box_decoder:
            names.append(f"box decoder ({type(self.core).__name__})")
        if self.incremental:
            names.append(f"incremental encoder ({type(self.core.encoder).__name__}"
                         + (", APPROXIMATE squeeze-excitation: SE scales from the updated mean, error measured "
                            "against whole passes)" if self.approximate else ")"))
        if self._skips is not None and not self.used_box_decoder:  # whole-decoder passes (the last call's box)
            names.append("incremental UNet skip convolutions (changed boxes only)")
        return names

    def _core_logits(self, xp: torch.Tensor, box: Box, wins: list[Box] | None, cropped: bool) -> torch.Tensor:
        """Logits (B, K, box) of the core model (the wrapper's inner model, if any) on its input ``xp``, with
        the box decoder / incremental encoder where they apply; ``wins``: per image, the changed box of xp."""
        # a box decoder pays off for boxes well inside the image; near the whole image the native
        # decoder is faster (measured: 0.36-0.51 s vs 0.18-0.24 s per 512x512 image on this CPU)
        small = cropped and area(box) <= BOX_DECODER_MAX_FRACTION * xp.shape[-2] * xp.shape[-1]
        m, dec = self.core, (self._box_dec if small else None)
        self.used_box_decoder = dec is not None
        if self._cache is not None and wins is not None:
            shapes = self._cache.level_shapes()
            if dec is not None and dec.applies(m, shapes):
                feats, origins = self._cache.features(xp, wins, dec.reads(m, shapes, box))
                return dec.decode(m, feats, box, origins, shapes)
            feats = self._cache.features(xp, wins)[0]
        else:
            feats = m.encoder(xp) if dec is not None else None
        if feats is None:
            logits = m(xp)
        elif dec is not None and dec.applies(m, [f.shape[-2:] for f in feats]):
            return dec.decode(m, feats, box)
        elif self._skips is not None and self._cache is not None and wins is not None:
            changed = [self._cache.changed_levels(w) for w in wins]
            logits = m.segmentation_head(self._skips.decode(m, feats, changed))
        else:
            logits = m.segmentation_head(m.decoder(feats))
        return logits[:, :, box[0] : box[1], box[2] : box[3]]


def _plain_forward(model: torch.nn.Module) -> bool:
    """True when ``model.forward`` is smp's encoder -> decoder -> head (no override, no extra head)."""
    try:
        from segmentation_models_pytorch.base import SegmentationModel
    except ImportError:  # pragma: no cover
        return False
    return (isinstance(model, SegmentationModel) and type(model).forward is SegmentationModel.forward
            and getattr(model, "classification_head", None) is None)


def _why_not(model, asked: bool, plain: bool, box: bool, incremental: bool, inc_on: bool,
             se_mode: str = "approximate") -> list[str]:
    """Human-readable reasons why an exact shortcut is not used (empty when both apply)."""
    if not asked:
        return ["shortcuts off: plain batched forward passes"]
    if not plain:
        return ["custom forward or classification head: plain batched forward passes"]
    notes = []
    if not box:
        notes.append(f"decoder {type(model).__name__} has no exact box rule (it runs whole)")
    if not incremental:
        if not inc_on:
            notes.append("incremental encoder off on CUDA by default")
        else:
            from matseg_nb.explain.squeeze_excite import looks_global

            enc = getattr(model, "encoder", None)
            se = enc is not None and looks_global(enc)
            why = ("its squeeze-excitation blocks pool globally, so a local change reaches every pixel"
                   + ("; se_mode='exact'" if has_squeeze_excitation(model) and se_mode == "exact" else "")
                   if se else "it is not a registered ResNet-family chain of local operations")
            notes.append(f"incremental encoder cannot be exact for {type(enc).__name__} ({why}): "
                         "plain batched encoder passes")
    return notes


def _padded_window(win: Box, hw: tuple[int, int], padded_hw) -> Box:
    """A window in the padded image: extended to the padded edge when reflect/replicate padding copies
    some of its rows or columns there."""
    (h, w), (hp, wp) = hw, (int(padded_hw[0]), int(padded_hw[1]))
    y0, y1, x0, x1 = win
    return (y0, hp if hp > h and y1 > 2 * h - hp - 1 else y1, x0, wp if wp > w and x1 > 2 * w - wp - 1 else x1)


class TiledProbFn(ProbFn):
    """The reported prediction path: every image of a batch goes through
    :func:`matseg_nb.models.tiling.predict_tiled` (``tile`` / ``overlap`` px, Hann blending), as the
    run's test masks do. Used when the image is larger than one tile, so that Z in H is the reported Z
    (DeepLab's global pooling sees a tile, not the whole image). No shortcuts: plain tiled passes."""

    def __init__(self, model: torch.nn.Module, tile: int, overlap: int, device=None, amp: bool | None = None):
        super().__init__(model, device=device, amp=amp, channels_last=False, shortcuts=False)
        self.tile, self.overlap = int(tile), int(overlap)
        self.shortcut_notes = [f"tiled prediction path (tile {self.tile} px, overlap {self.overlap} px, as the "
                               "reported masks): plain tiled forward passes, no shortcuts"]
        c = next(m for m in self.model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
        with torch.inference_mode():
            self.n_out = int(self.model(torch.zeros(1, c, 64, 64, device=self.device)).shape[1])

    def __call__(self, x: torch.Tensor, crop: Box | None = None, windows: list[Box] | None = None) -> torch.Tensor:
        from matseg_nb.models.tiling import predict_tiled

        self.used_box_decoder = False
        out = []
        for img in x.to(self.device, torch.float32):
            p = predict_tiled(self.model, img, self.n_out, self.tile, self.overlap, amp=self.amp)
            out.append(p if crop is None else p[:, crop[0] : crop[1], crop[2] : crop[3]])
        return torch.stack(out).to(self.device)


def prediction_fn(model: torch.nn.Module, image_hw: tuple[int, int], meta: dict, device=None,
                  amp: bool = False) -> tuple[ProbFn, str]:
    """The probability function on the run's reported prediction path for an image of ``image_hw``:
    :class:`TiledProbFn` when the image exceeds the run's ``training.tile_size`` (multi-class models),
    else the whole-image :class:`ProbFn` (identical to one tile); returns (fn, a note or "")."""
    train = meta.get("training") or {}
    tile, overlap = train.get("tile_size"), int(train.get("tile_overlap", 64))
    if not tile or max(image_hw) <= int(tile):
        return ProbFn(model, device=device, amp=amp), ""
    fn = TiledProbFn(model, int(tile), overlap, device=device, amp=amp)
    if fn.n_out == 1:
        return ProbFn(model, device=device, amp=amp), (
            f"image larger than the run's tile ({tile} px) but the model is single-logit: H uses one "
            "whole-image pass, which may differ from the tiled reported mask")
    return fn, ""
