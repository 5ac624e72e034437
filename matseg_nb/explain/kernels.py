"""Perturbation kernels: what a localized perturbation at window (y0, x0) puts into the image.

Every kernel is built once per image by a factory in :data:`KERNELS` and returns a
:class:`Perturbation`: ``patch(y0, x0)`` gives the replacement values (C, h, w) of the window
whose top-left corner is (y0, x0) (windows are clipped at the image border). Kernels whose
replacement is one image-sized field (blur, constant, noise) also expose it as ``field``
(C, H, W); the Captum construction uses it as Occlusion's baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from matseg_nb.errors import UserError


@dataclass
class Perturbation:
    """Replacement values for a window of size ``window`` (pixels) of a (C, H, W) image."""

    name: str
    image: torch.Tensor  # (C, H, W) float32
    window: int
    field: torch.Tensor | None  # (C, H, W) replacement field, or None when window-dependent
    params: dict

    def patch(self, y0: int, x0: int) -> torch.Tensor:
        """Replacement (C, h, w) for the window at (y0, x0), clipped to the image."""
        w = self.window
        if self.field is not None:
            return self.field[:, y0 : y0 + w, x0 : x0 + w]
        win = self.image[:, y0 : y0 + w, x0 : x0 + w]
        return win.mean(dim=(1, 2), keepdim=True).expand_as(win)

    def apply(self, image: torch.Tensor, y0: int, x0: int) -> torch.Tensor:
        """Return a copy of ``image`` (C, H, W) with the window at (y0, x0) perturbed."""
        out = image.clone()
        p = self.patch(y0, x0)
        out[:, y0 : y0 + p.shape[1], x0 : x0 + p.shape[2]] = p
        return out


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (C, H, W) image, reflect padding, radius ceil(3 sigma) px."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (xs / sigma) ** 2)
    k = (k / k.sum()).to(image.dtype)
    c = image.shape[0]
    x = image[None]
    mode = "reflect" if min(image.shape[1:]) > radius else "replicate"
    x = F.pad(x, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x[0]


def _blur(image: torch.Tensor, window: int, sigma: float | None = None) -> Perturbation:
    sigma = float(sigma) if sigma else max(1.0, window / 4.0)
    return Perturbation("blur", image, window, gaussian_blur(image, sigma), {"sigma": sigma})


def _local_mean(image: torch.Tensor, window: int) -> Perturbation:
    return Perturbation("local_mean", image, window, None, {})


def _constant(image: torch.Tensor, window: int, value: float = 0.0) -> Perturbation:
    return Perturbation("constant", image, window, torch.full_like(image, float(value)), {"value": float(value)})


def _noise(image: torch.Tensor, window: int, std: float = 0.1, seed: int = 0) -> Perturbation:
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(image.shape, generator=gen, dtype=torch.float32).to(image.device, image.dtype)
    return Perturbation("noise", image, window, image + float(std) * eps, {"std": float(std), "seed": int(seed)})


#: kernel name -> factory(image (C,H,W), window, **params) -> Perturbation
KERNELS: dict[str, Callable[..., Perturbation]] = {
    "blur": _blur,
    "local_mean": _local_mean,
    "constant": _constant,
    "noise": _noise,
}


def make_perturbation(name: str, image: torch.Tensor, window: int, **params) -> Perturbation:
    """Build the perturbation ``name`` (one of :data:`KERNELS`) for ``image`` (C, H, W)."""
    if name not in KERNELS:
        raise UserError(f"kernel: expected one of {sorted(KERNELS)}, found {name!r}")
    try:
        return KERNELS[name](image, window, **params)
    except TypeError as err:
        raise UserError(f"kernel params for {name!r}: {err}") from None
