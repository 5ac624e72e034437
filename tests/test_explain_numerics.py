"""Heatmap numerics and running: float32 by default on every device, AMP only when asked (noise floor
reported), progress lines, ``max_minutes`` giving a partial map, anti-aliased masks thresholded with a note.
CPU comparisons are against H in float64 within the float32 rounding bound of ``_explain_helpers.reference64``
(holds on every CPU kernel path); the CUDA one at 1e-4 relative (cuDNN may pick TF32-free but other kernels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _explain_helpers import assert_float32_exact, box_mask, rand_image, reference64, tiny_model
from _model_helpers import tiny_smp
from PIL import Image

from matseg_nb.explain import ProbFn, heatmap, heatmap_literal, load_annotation


def test_float32_is_the_default_on_cpu():
    fn = ProbFn(tiny_model("Unet"), device="cpu")
    assert fn.amp is False
    res = heatmap(tiny_model("Unet"), rand_image(), box_mask(), window=8, stride=16)
    assert res.extra["amp"] is False and "amp_noise_floor" not in res.extra


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_float32_is_the_default_on_cuda_and_amp_reports_its_noise_floor():
    model, img, a = tiny_model("Unet"), rand_image(), box_mask()
    assert ProbFn(model, device="cuda").amp is False
    fp32 = heatmap(model, img, a, window=8, stride=8, device="cuda")
    assert fp32.extra["amp"] is False
    lit = heatmap_literal(model, img, a, window=8, stride=8, device="cpu")
    np.testing.assert_allclose(fp32.grid, lit.grid, rtol=1e-4, atol=1e-4)
    amp = heatmap(model, img, a, window=8, stride=8, device="cuda", amp=True)
    assert amp.extra["amp"] is True and amp.extra["amp_noise_floor"] >= 0


def test_amp_on_cpu_is_explicit_and_measured():
    res = heatmap(tiny_model("Unet"), rand_image(), box_mask(), window=8, stride=16, amp=True)
    assert res.extra["amp"] is True and res.extra["amp_noise_floor"] > 0  # bf16 differs from float32


def test_size_is_printed_before_and_max_minutes_gives_a_partial_map():
    lines: list[str] = []
    res = heatmap(tiny_model("Unet"), rand_image(), box_mask(), window=8, stride=4, max_batch=4,
                  log=lines.append, progress=True)
    assert lines[0].startswith("heatmap: 99 locations") and "forward passes" in lines[0]
    assert "exact shortcuts: fused BN (" in lines[0] and "; box decoder (Unet)" in lines[0] and "about" in lines[1]
    assert not res.partial and res.valid.sum() == 99
    part = heatmap(tiny_model("Unet"), rand_image(), box_mask(), window=8, stride=4, max_batch=4,
                   max_minutes=0.0, log=lines.append)
    assert part.partial and part.meta()["partial"] and 0 < part.valid.sum() < 99
    ref = reference64(tiny_model("Unet"), rand_image(), box_mask(), window=8, stride=4)
    assert_float32_exact(res.grid, ref)
    assert_float32_exact(np.where(part.valid, part.grid, ref[0]), ref)
    assert "partial" in lines[-1]


def test_squeeze_excitation_exact_mode_runs_whole_encoder_passes_and_says_so():
    """``se_mode="exact"``: no approximate incremental encoder, the line says why; H exact (the approximate
    default mode is tested in ``test_explain_shortcuts_se.py``)."""
    model = tiny_smp(encoder="se_resnext50_32x4d", encoder_depth=5)
    fn = ProbFn(model, device="cpu", se_mode="exact")
    assert not fn.incremental and any("squeeze-excitation" in n for n in fn.shortcut_notes)
    img, a = rand_image(1, 64, 64), box_mask(64, 64, (20, 40, 20, 40))
    lines: list[str] = []
    res = heatmap(fn, img, a, window=16, stride=16, log=lines.append)
    assert "squeeze-excitation" in lines[0] and "squeeze-excitation" in res.extra["note"]
    assert "se_check" not in res.extra
    assert_float32_exact(res.grid, reference64(model, img, a, window=16, stride=16))


def test_anti_aliased_mask_is_thresholded_with_a_note(tmp_path):
    a = np.zeros((20, 30), np.uint8)
    a[5:15, 5:25] = 255
    a[4, 5:25] = 100  # anti-aliased edge: below half -> outside
    a[15, 5:25] = 200  # above half -> inside
    Image.fromarray(a).save(tmp_path / "A.png")
    notes: list[str] = []
    mask = load_annotation(tmp_path / "A.png", (20, 30), notes)
    assert mask.sum() == 11 * 20 and len(notes) == 1 and "not binary" in notes[0]
