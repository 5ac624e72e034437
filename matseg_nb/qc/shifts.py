"""Realistic imaging shifts on native-intensity (C, H, W) float arrays, two strengths, seeded.

Spec strings: ``"<name>:<strength>"`` with strength ``mild`` or ``strong`` (e.g. ``noise:strong``).
The native range (0..255 or 0..65535) is inferred from the maximum; outputs are clipped to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from matseg_nb.errors import UserError

STRENGTHS = ("mild", "strong")


def native_max(img: np.ndarray) -> float:
    """Full-scale value of the native dtype inferred from the data: 255, 65535 or the max."""
    m = float(np.max(img)) if img.size else 1.0
    return 255.0 if m <= 255 else 65535.0 if m <= 65535 else m


def _gaussian_noise(img, s, rng, full):
    sigma = {"mild": 0.02, "strong": 0.08}[s] * full
    return img + rng.normal(0.0, sigma, img.shape)


def _poisson_noise(img, s, rng, full):
    photons = {"mild": 200.0, "strong": 20.0}[s]  # photons at full scale
    return rng.poisson(np.clip(img, 0, None) / full * photons) / photons * full


def _blur(img, s, rng, full):
    sigma = {"mild": 1.0, "strong": 3.0}[s]
    return ndimage.gaussian_filter(img, sigma=(0, sigma, sigma))


def _contrast(img, s, rng, full):
    gain = {"mild": 0.8, "strong": 0.5}[s]
    mean = img.mean(axis=(1, 2), keepdims=True)
    return mean + gain * (img - mean)


def _brightness(img, s, rng, full):
    return img + {"mild": 0.08, "strong": 0.25}[s] * full


def _rescale(img, s, rng, full):
    """Magnification change: zoom in by 1.25 (mild) or 2 (strong), centre-crop back to (H, W)."""
    f = {"mild": 1.25, "strong": 2.0}[s]
    z = ndimage.zoom(img, (1, f, f), order=1)
    h, w = img.shape[1:]
    top, left = (z.shape[1] - h) // 2, (z.shape[2] - w) // 2
    return z[:, top : top + h, left : left + w]


def _bit_down(img, s, rng, full):
    bits = {"mild": 5, "strong": 3}[s]
    step = full / (2**bits)
    return np.floor(img / step) * step


def _bit_up(img, s, rng, full):
    """8-bit -> 16-bit: mild = full-range re-encoding (x * 257); strong = 12-bit data stored in a
    16-bit container (x * 16, so the image fills 1/16 of the 16-bit range). 16-bit input is returned."""
    if full > 255:
        return img
    return img * (257.0 if s == "mild" else 16.0)


#: shift name -> f(img, strength, rng, full_scale) -> shifted float array (before clipping).
SHIFTS: dict[str, Callable] = {
    "noise": _gaussian_noise,
    "poisson": _poisson_noise,
    "blur": _blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "rescale": _rescale,
    "bitdepth_down": _bit_down,
    "bitdepth_up": _bit_up,
}


def parse_shift(spec: str) -> tuple[str, str]:
    """'noise:strong' -> ('noise', 'strong'); bad specs raise UserError."""
    name, _, strength = spec.partition(":")
    strength = strength or "mild"
    problems = []
    if name not in SHIFTS:
        problems.append(f"--shift {spec}: expected a name in {sorted(SHIFTS)}, found {name!r}")
    if strength not in STRENGTHS:
        problems.append(f"--shift {spec}: expected strength mild|strong, found {strength!r}")
    if problems:
        raise UserError(*problems)
    return name, strength


def all_shift_specs() -> list[str]:
    """Every shift at both strengths, e.g. ['noise:mild', 'noise:strong', ...]."""
    return [f"{n}:{s}" for n in SHIFTS for s in STRENGTHS]


def apply_shift(img: np.ndarray, spec: str, seed: int = 0) -> np.ndarray:
    """Apply shift ``spec`` to a (C, H, W) native-intensity array; deterministic for a seed (float32)."""
    name, strength = parse_shift(spec)
    img = np.asarray(img, dtype=np.float64)
    full = native_max(img)
    out = SHIFTS[name](img, strength, np.random.default_rng(seed), full)
    out_full = 65535.0 if name == "bitdepth_up" and full <= 255 else full
    return np.clip(out, 0.0, out_full).astype(np.float32)


def shift_mask(mask: np.ndarray, spec: str) -> np.ndarray:
    """The (H, W) class-id mask matching ``apply_shift(img, spec)``: only ``rescale`` moves pixels."""
    name, strength = parse_shift(spec)
    if name != "rescale":
        return mask
    f = {"mild": 1.25, "strong": 2.0}[strength]
    z = ndimage.zoom(mask, (f, f), order=0)
    h, w = mask.shape
    top, left = (z.shape[0] - h) // 2, (z.shape[1] - w) // 2
    return z[top : top + h, left : left + w]
