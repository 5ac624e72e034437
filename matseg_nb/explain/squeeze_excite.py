"""Squeeze-excitation in the incremental encoder: each SE scale recomputed from the exactly updated mean.

An SE block multiplies its input u (B, C, H, W) by s = gate(fc(mean_hw u)) per channel. When a window
changes u only on a box b, the new mean is exact from the cached one and the box alone:
``mean' = (Σ u0 + Σ_b (u' - u0)) / (H W)`` (:func:`local_scales` patches the SE module's forward with
this for one unit call). Inside b the block's output is then exact. Outside b the exact output is u0 s',
not the cached u0 s0: scaling the cached pre-SE activations by s'/s0 per channel would be exact for the
block itself, but every later convolution and SE block would then see a change everywhere (the
propagating boxes grow to the whole map, i.e. a whole pass). The **approximate mode** keeps u0 s0
outside the propagated boxes; its error is that per-channel relative rescaling |s'/s0 - 1| (of order
|b| / (H W) times the SE's sensitivity) carried through the rest of the network. It is therefore
measured on every heatmap against whole forward passes on sampled locations and the heatmap falls
back to exact whole passes when it exceeds the tolerance (:func:`matseg_nb.explain.heatmap.heatmap`).

Krypton (Nakandala et al., SIGMOD 2019) and DeltaCNN (Parger et al., CVPR 2022) make the same trade for
local CNNs (projective-field thresholds; delta thresholds); neither treats a global pooling other than
by recomputing it, which for SE means every block after the first changed one runs whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from matseg_nb.explain.boxes import Box, take


def _timm_scale(se: nn.Module, mean: torch.Tensor) -> torch.Tensor:
    return se.gate(se.fc2(se.act(se.bn(se.fc1(mean)))))


def _senet_scale(se: nn.Module, mean: torch.Tensor) -> torch.Tensor:
    return se.sigmoid(se.fc2(se.relu(se.fc1(mean))))


#: "<module>.<class>" of an SE module -> fn(se, mean (B, C, 1, 1)) -> scale (B, C, 1, 1), as its forward
SE_SCALES: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "timm.layers.squeeze_excite.SEModule": _timm_scale,
    "segmentation_models_pytorch.encoders._senet.SEModule": _senet_scale,
}


def _key(m: nn.Module) -> str:
    return f"{type(m).__module__}.{type(m).__name__}"


def is_se(m: nn.Module) -> bool:
    """True for a registered SE module (timm's without its max-pool option; smp's SENet one)."""
    return _key(m) in SE_SCALES and not getattr(m, "add_maxpool", False)


def se_modules(module: nn.Module) -> list[nn.Module]:
    """The registered SE modules inside ``module``, in order of definition."""
    return [m for m in module.modules() if is_se(m)]


def looks_global(module: nn.Module) -> bool:
    """True when ``module`` contains a squeeze-excitation-like block (registered or not)."""
    return any("SE" in type(m).__name__ or "Squeeze" in type(m).__name__ for m in module.modules())


class SECache:
    """The unperturbed image's SE inputs u0 (1, C, H, W) and their sums, per SE module, captured by
    :meth:`capture` around the image's whole pass."""

    def __init__(self) -> None:
        self.u0: dict[int, torch.Tensor] = {}
        self.sum0: dict[int, torch.Tensor] = {}

    @contextmanager
    def capture(self, modules: list[nn.Module]) -> Iterator[None]:
        def hook(m, args):
            self.u0[id(m)] = args[0].detach()
            self.sum0[id(m)] = args[0].detach().double().sum(dim=(2, 3), keepdim=True)

        handles = [m.register_forward_pre_hook(hook) for m in modules]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.u0.values())

    @contextmanager
    def local_scales(self, modules: list[nn.Module], boxes: list[tuple[Box, Box]]) -> Iterator[None]:
        """While active, each SE module in ``modules`` scales batch image j of its input (a crop) by
        the scale of the updated mean, with ``boxes[j]`` = (the changed box in the crop, the same box in
        the map); see the module docstring."""
        with ExitStack() as stack:
            for m in modules:
                stack.enter_context(self._patch(m, boxes))
            yield

    @contextmanager
    def _patch(self, m: nn.Module, boxes: list[tuple[Box, Box]]) -> Iterator[None]:
        u0, sum0, scale = self.u0[id(m)], self.sum0[id(m)], SE_SCALES[_key(m)]
        hw = float(u0.shape[-2] * u0.shape[-1])

        def forward(u: torch.Tensor) -> torch.Tensor:
            means = [((sum0 + (take(u[j : j + 1], rel).double() - take(u0, box).double()).sum(dim=(2, 3),
                                                                                             keepdim=True))
                      / hw) for j, (rel, box) in enumerate(boxes)]
            return u * scale(m, torch.cat(means).to(u.dtype))

        m.forward = forward
        try:
            yield
        finally:
            del m.forward
