"""Shared helpers for the explain tests: tiny smp models, images, masks, a model with a known answer."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def tiny_model(arch: str = "Unet", in_channels: int = 1, classes: int = 3, seed: int = 0) -> nn.Module:
    """smp ``arch`` on the tiny timm encoder ``tu-test_resnet``, random weights, eval mode (``_model_helpers``)."""
    from _model_helpers import tiny_smp

    return tiny_smp(arch, in_channels=in_channels, classes=classes, seed=seed)


def rand_image(c: int = 1, h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((c, h, w)).astype(np.float32)


def box_mask(h: int = 48, w: int = 40, box=(10, 25, 12, 30)) -> np.ndarray:
    a = np.zeros((h, w), dtype=bool)
    a[box[0] : box[1], box[2] : box[3]] = True
    return a


class SourceModel(nn.Module):
    """Known answer: every pixel's class-1 logit is ``gain * (mean of x^2 over rows/cols src) - bias``.

    The prediction anywhere (hence inside any A) depends only on the source box ``src`` =
    (y0, y1, x0, x1); blurring a high-contrast texture there lowers mean(x^2) and flips pixels.
    """

    def __init__(self, src=(8, 24, 8, 24), gain: float = 40.0, bias: float = 18.0):
        super().__init__()
        self.src = src
        self.gain = gain
        self.bias = bias
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, x0, x1 = self.src
        s = (x[:, :, y0:y1, x0:x1] ** 2).mean(dim=(1, 2, 3))  # (B,)
        logit1 = (self.gain * s - self.bias)[:, None, None, None].expand(-1, 1, *x.shape[-2:])
        return torch.cat([torch.zeros_like(logit1), logit1], dim=1) + 0 * self.dummy


def checker_image(h: int = 64, w: int = 64, src=(8, 24, 8, 24)) -> np.ndarray:
    """(1, H, W): flat 0.5 everywhere, a 0/1 checkerboard (2 px squares) inside ``src``."""
    img = np.full((1, h, w), 0.5, dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    checker = (((yy // 2) + (xx // 2)) % 2).astype(np.float32)
    y0, y1, x0, x1 = src
    img[0, y0:y1, x0:x1] = checker[y0:y1, x0:x1]
    return img


def reference64(model: nn.Module, image: np.ndarray, mask: np.ndarray, kernel: str = "blur", window: int = 16,
                stride: int = 4, locations=None) -> tuple[np.ndarray, float]:
    """H computed in float64 on the same float32 perturbed inputs, and the float32 rounding bound on H.

    Returns (grid (nH, nW) float64, NaN where not computed; ``bound``). ``bound`` = 4 n δ with
    n = |A| x K terms and δ = max |p32 - p64| over the unperturbed image's probabilities (the float32
    model's rounding at this tensor's scale): |H32 - H64| <= Σ|δz| + Σ|δz'| <= 2 n δ for Z and Z', times
    2 because the perturbed images and other kernel paths (AVX2 / AVX-512, crops vs whole maps) round
    differently; floored at 8 eps32 max H64. A float32 result within ``bound`` of the grid is exact to
    float32 rounding on any CPU; one wrong box or tap moves H by orders of magnitude more (planted in
    ``test_explain_exactness.py``)."""
    import copy

    from matseg_nb.explain.forward import ProbFn, pad_batch
    from matseg_nb.explain.grid import grid_locations
    from matseg_nb.explain.kernels import make_perturbation

    m64 = copy.deepcopy(model).double().eval()
    fn32 = ProbFn(model, channels_last=False, shortcuts=False)
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    pert = make_perturbation(kernel, x, window)
    ys, xs = grid_locations(tuple(x.shape[1:]), window, stride)
    a = torch.as_tensor(np.asarray(mask) > 0, dtype=torch.float64)

    def probs64(xx: torch.Tensor) -> torch.Tensor:
        xp, (h, w) = pad_batch(xx[None], fn32.pad_multiple)
        with torch.no_grad():
            logits = m64(xp.double())[0, :, :h, :w]
        if logits.shape[0] == 1:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p])
        return torch.softmax(logits, 0)

    z = probs64(x)
    delta = float((fn32(x[None])[0].double() - z).abs().max())
    grid = np.full((len(ys), len(xs)), np.nan)
    locs = locations if locations is not None else [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    for i, j in locs:
        grid[i, j] = float(((z - probs64(pert.apply(x, ys[i], xs[j]))).abs() * a).sum())
    n = int(a.sum()) * z.shape[0]
    bound = max(4.0 * n * delta, 8 * float(np.finfo(np.float32).eps) * float(np.nanmax(grid)))
    return grid, bound


def assert_float32_exact(result_grid: np.ndarray, ref: tuple[np.ndarray, float]) -> None:
    """``result_grid`` equals the float64 reference within its float32 bound, where the reference is computed."""
    grid, bound = ref
    done = ~np.isnan(grid)
    err = float(np.abs(np.asarray(result_grid, dtype=np.float64)[done] - grid[done]).max())
    assert err <= bound, f"max |H - H64| = {err:.3g} > float32 bound {bound:.3g} (max H64 {np.nanmax(grid):.3g})"


EPS32 = float(np.finfo(np.float32).eps)


def probs64(model: nn.Module, xb: torch.Tensor, crop=None) -> torch.Tensor:
    """Class probabilities (B, K, H, W) (or their ``crop`` box) of ``model`` computed in float64 on the float32
    batch ``xb``, padded as :class:`matseg_nb.explain.ProbFn` pads it: the reference of the tensor tests."""
    import copy

    from matseg_nb.explain.forward import ProbFn, pad_batch

    m64 = copy.deepcopy(model).double().eval()
    xp, (h, w) = pad_batch(xb.float(), ProbFn(model, shortcuts=False).pad_multiple)
    with torch.no_grad():
        logits = m64(xp.double())[..., :h, :w]
    p = torch.cat([1 - torch.sigmoid(logits), torch.sigmoid(logits)], 1) if logits.shape[1] == 1 else \
        torch.softmax(logits, 1)
    return p if crop is None else p[..., crop[0] : crop[1], crop[2] : crop[3]]


def tensor_bound(plain32: torch.Tensor, ref64: torch.Tensor) -> float:
    """The float32 rounding bound of one tensor: 4 max|plain32 - ref64| (the plain float32 computation's own
    error at this tensor's scale, times 2 for the other computation and 2 for other kernel paths: AVX2 /
    AVX-512, crops vs whole maps, channels_last), floored at 8 eps32 max|ref64|."""
    return max(4.0 * float((plain32.double() - ref64.double()).abs().max()),
               8 * EPS32 * float(ref64.double().abs().max()))


def assert_tensor_exact(result: torch.Tensor, plain32: torch.Tensor, ref64: torch.Tensor, what: str = "") -> None:
    """``result`` (float32, e.g. through a shortcut) equals the float64 reference ``ref64`` within
    :func:`tensor_bound`; ``plain32``: the same quantity by the plain float32 computation."""
    bound = tensor_bound(plain32, ref64)
    err = float((result.double() - ref64.double()).abs().max())
    assert err <= bound, f"{what}: max |x - x64| = {err:.3g} > float32 bound {bound:.3g}"
