"""FLOPs counted by ``torch.profiler`` and charged to the part of the model whose weights they use.

:func:`count_flops` runs a callable under ``torch.profiler.profile(with_flops=True)`` and sums the
``flops`` of convolution and matrix-product events (``aten::conv2d``, ``aten::addmm``, ``aten::mm`` ...:
2 x multiply-adds from the input shapes, groups included; element-wise ops are not counted), plus the
transposed convolutions the profiler leaves at 0 (:func:`transposed_flops`, from the recorded shapes). While it
runs, a ``TorchFunctionMode`` wraps every convolution / linear / matrix product one of whose arguments
shares storage with a parameter of the given models (or of any model reachable from the given objects, such
as a ``ProbFn``'s fused copy) in ``record_function("explain.<part>")`` (part from the
parameter's name: ``encoder``, ``decoder``, ``head`` for ``segmentation_head``; wrappers' prefixes such as
the ``input_scale`` wrapper's are skipped), so each counted event is charged to its enclosing range, and to
``other`` when there is none (weights that are not the model's, e.g. folded copies). Weight slices (the
DeepLab box decoder's per-tap convolutions) share their parameter's storage, so they are charged too.

:func:`mark` (called from inside the counted callable, e.g. from the heatmap's ``log`` callback when its
location loop starts) splits the count into work before and after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

MARK = "explain.mark"
PARTS = {"encoder": "encoder", "decoder": "decoder", "segmentation_head": "head"}
#: profiler events whose ``flops`` are counted (convolutions and matrix products)
COUNTED = frozenset({"aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::mm", "aten::addmm", "aten::bmm",
                     "aten::baddbmm"})
#: transposed convolutions, which the profiler gives no FLOPs: 2 x input pixels x weight size, from the shapes
TRANSPOSED = frozenset({"aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d"})
_CONV_LIKE = {torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
              torch.conv_transpose3d, torch.nn.functional.linear}
_WEIGHTED = {*_CONV_LIKE, torch.nn.functional.linear, torch.mm, torch.matmul,
             torch.addmm, torch.bmm, torch.baddbmm, torch.Tensor.mm, torch.Tensor.matmul, torch.Tensor.__matmul__}


@dataclass
class FlopCount:
    """Counted FLOPs: ``total`` and ``parts`` (encoder / decoder / head / other), and the same for the work
    after :func:`mark` (``None`` when it was not called); ``uncounted``: convolution calls that reached the
    profiler without FLOPs (not through ``aten::conv*d``), which the counts miss."""

    total: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    after_mark: float | None = None
    parts_after_mark: dict[str, float] | None = None
    uncounted: int = 0


def part_of(name: str) -> str:
    """'encoder' / 'decoder' / 'head' / 'other' for a parameter name such as ``inner.encoder.layer1.0.conv1.weight``."""
    for piece in name.split("."):
        if piece in PARTS:
            return PARTS[piece]
    return "other"


class _Attribute(TorchFunctionMode):
    """Wraps weighted ops whose arguments share storage with a parameter found from ``roots`` in a
    ``record_function``; an unknown storage triggers one new search (e.g. a model copy built during the run)."""

    def __init__(self, roots: tuple):
        super().__init__()
        self.roots = roots
        self.storages = parameter_parts(*roots)
        self.unknown: set[int] = set()

    def part(self, t, search: bool) -> str | None:
        s = _storage(t) if isinstance(t, torch.Tensor) else None
        if s is None:
            return None
        if search and s not in self.storages and s not in self.unknown:
            self.storages = parameter_parts(*self.roots)
            if s not in self.storages:
                self.unknown.add(s)
        return self.storages.get(s)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _WEIGHTED:
            if func in _CONV_LIKE:  # (input, weight, ...): only the weight may trigger a new search
                found = self.part(kwargs.get("weight", args[1] if len(args) > 1 else None), search=True)
            else:
                found = next((p for t in (*args, *kwargs.values()) if (p := self.part(t, search=False))), None)
            if found is not None:
                with torch.profiler.record_function(f"explain.{found}"):
                    return func(*args, **kwargs)
        return func(*args, **kwargs)


def parameter_parts(*roots, depth: int = 5) -> dict[int, str]:
    """Storage pointer -> part for the parameters, buffers and tensor attributes of every module reachable
    from ``roots`` (modules, or
    objects holding them in attributes, lists, dicts: e.g. a ``ProbFn`` with its fused copy and encoder
    cache), named from the outermost module that holds them (a name with no part stays 'other' unless
    another module names it)."""
    out: dict[int, str] = {}
    seen: set[int] = set()
    todo = [(r, 0) for r in roots]
    while todo:
        obj, level = todo.pop(0)
        if id(obj) in seen or level > depth or isinstance(obj, torch.Tensor | str | bytes | int | float):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            for name, t in _module_tensors(obj):
                s = _storage(t)
                if s is not None and out.get(s, "other") == "other":
                    out[s] = part_of(name)
            continue  # its submodules are in _module_tensors
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, list | tuple | set):
            children = list(obj)
        else:
            children = list(getattr(obj, "__dict__", {}).values())
        todo += [(c, level + 1) for c in children]
    return out


def _module_tensors(module: torch.nn.Module):
    """(qualified name, tensor) for the parameters, buffers and plain tensor attributes (e.g. kernels built
    from the weights) of ``module`` and its submodules."""
    for prefix, sub in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        named = [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False),
                 *((k, v) for k, v in vars(sub).items() if isinstance(v, torch.Tensor))]
        for name, t in named:
            if t is not None:
                yield dot + name, t


def _storage(t: torch.Tensor) -> int | None:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # pragma: no cover - tensors without storage
        return None


def mark() -> None:
    """A zero-length profiler range: work starting after it counts as ``after_mark``."""
    with torch.profiler.record_function(MARK):
        pass


def count_flops(run: Callable[[], Any], *roots) -> tuple[FlopCount, Any]:
    """(counted FLOPs of ``run()``, its result); ``roots``: the models whose parameters define the parts, or
    objects holding them (a ``ProbFn``: its model, fused copy and caches; see :func:`parameter_parts`)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True,
                                record_shapes=True) as prof:
        with _Attribute(roots):
            out = run()
    return summarise(prof.events()), out


def summarise(events) -> FlopCount:
    """:class:`FlopCount` of profiler ``events`` (``prof.events()``)."""
    marks = [e.time_range.start for e in events if e.name == MARK]
    t_mark = min(marks) if marks else None
    count = FlopCount(after_mark=0.0 if marks else None, parts_after_mark={} if marks else None)
    for e in events:
        flops = transposed_flops(e.input_shapes) if e.name in TRANSPOSED else e.flops if e.name in COUNTED else 0
        if flops:
            part = _enclosing_part(e)
            count.total += flops
            count.parts[part] = count.parts.get(part, 0.0) + flops
            if t_mark is not None and e.time_range.start >= t_mark:
                count.after_mark += flops
                count.parts_after_mark[part] = count.parts_after_mark.get(part, 0.0) + flops
        elif e.name not in TRANSPOSED and "conv" in e.name.lower() and not e.flops and not _has_counted_ancestor(e):
            parent = e.cpu_parent
            if parent is None or "conv" not in parent.name.lower():  # the outermost of a chain only
                count.uncounted += 1
    return count


def transposed_flops(shapes) -> float:
    """FLOPs of a transposed convolution from its recorded input shapes [input (N, C_in, *spatial), weight
    (C_in, C_out / groups, *kernel), ...]: every input element meets C_out / groups x kernel weights."""
    x, w = shapes[0], shapes[1]
    if not x or not w:
        return 0.0
    return 2.0 * float(np.prod(x)) / x[1] * float(np.prod(w))


def _enclosing_part(e) -> str:
    p = e.cpu_parent
    while p is not None:
        if p.name.startswith("explain.") and p.name != MARK:
            return p.name.split(".", 1)[1]
        p = p.cpu_parent
    return "other"


def _has_counted_ancestor(e) -> bool:
    p = e.cpu_parent
    while p is not None:
        if p.name in COUNTED or p.name in TRANSPOSED:
            return True
        p = p.cpu_parent
    return False
