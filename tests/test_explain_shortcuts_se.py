"""Squeeze-excitation encoders (timm SE-ResNet via smp ``tu-``, smp's SENet): the approximate incremental
encoder (:mod:`matseg_nb.explain.squeeze_excite`) is measured against whole passes on every heatmap; within
its tolerance (1e-4 of the largest H checked; a trained tu-seresnext26d UNet: 2e-7; the tiny model below with
gates of weight std 0.03: about 7e-6, with std 1: about 5e-3) it is kept, past it the heatmap falls back to exact whole
encoder passes; ``se_mode="exact"`` never approximates. The measured error is printed (``pytest -s``)."""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pytest
import torch
from _explain_helpers import assert_float32_exact, box_mask, rand_image, reference64

from matseg_nb.explain import ProbFn, heatmap


def tiny_se_model(seed: int = 0, gate_std: float = 1.0) -> torch.nn.Module:
    """smp Unet on timm's ``test_resnet`` with an SE module in every block (2.3 M parameters), non-trivial
    BatchNorm statistics and affine parameters, SE gates that depend on their mean (``gate_std``: the std of
    the gates' weights; 1.0 is far more sensitive than trained SE gates, 0.03 about as sensitive)."""
    import segmentation_models_pytorch as smp
    from segmentation_models_pytorch.encoders.timm_universal import TimmUniversalEncoder

    torch.manual_seed(seed)
    model = smp.Unet("tu-test_resnet", encoder_weights=None, in_channels=1, classes=3)
    model.encoder = TimmUniversalEncoder("test_resnet", pretrained=False, in_channels=1, depth=5,
                                         block_args={"attn_layer": "se"})
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # timm zero-initialises each block's last BN: undo it
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
        if type(m).__name__ == "SEModule":  # a gate that depends on the mean (random init is nearly flat)
            torch.nn.init.normal_(m.fc1.weight, 0.0, gate_std)
            torch.nn.init.constant_(m.fc1.bias, 0.1)
            torch.nn.init.normal_(m.fc2.weight, 0.0, gate_std)
    return model.eval()


heatmap_module = importlib.import_module("matseg_nb.explain.heatmap")  # the package exports the function
IMG, A = rand_image(1, 192, 192, seed=5), box_mask(192, 192, (80, 110, 70, 120))
LOCATIONS = [(0, 0), (4, 4), (5, 6), (10, 1), (2, 9)]


def test_se_encoders_are_approximate_only():
    from matseg_nb.explain.incremental import has_squeeze_excitation, supports_incremental

    model = tiny_se_model()
    assert has_squeeze_excitation(model) and not supports_incremental(model)
    assert supports_incremental(model, approximate=True)
    fn = ProbFn(model)
    assert fn.approximate and "APPROXIMATE squeeze-excitation" in fn.shortcut_names[-1]
    exact = ProbFn(model, se_mode="exact")
    assert not exact.incremental and not exact.approximate and fn.exact().se_mode == "exact"
    assert any("squeeze-excitation" in n and "se_mode='exact'" in n for n in exact.shortcut_notes)
    with pytest.raises(ValueError, match="se_mode"):
        ProbFn(model, se_mode="fast")


def test_se_unit_chain_reproduces_the_encoder():
    """A window covering the whole image recomputes every unit on the whole map: each SE mean is then the
    whole map's, so the features equal the encoder's to float32 rounding."""
    from _explain_helpers import assert_tensor_exact

    from matseg_nb.explain.incremental import IncrementalEncoder

    model = tiny_se_model()
    x = torch.as_tensor(IMG)[None]
    xb = x.clone()
    xb[..., 20:40, 20:40] = 0.0
    with torch.no_grad():
        inc = IncrementalEncoder(model.encoder, x, approximate=True)
        feats = inc.features(xb, [(0, 192, 0, 192)])[0]
        plain = model.encoder(xb)
        ref = copy.deepcopy(model.encoder).double()(xb.double())
    for lv in range(1, 6):
        assert_tensor_exact(feats[lv], plain[lv], ref[lv], f"level {lv}")
    with pytest.raises(ValueError, match="no exact unit chain"):
        IncrementalEncoder(model.encoder, x)


def test_se_approximate_heatmap_is_measured_and_within_tolerance():
    model = tiny_se_model(gate_std=0.03)
    lines: list[str] = []
    res = heatmap(ProbFn(model), IMG, A, window=16, stride=16, locations=LOCATIONS, log=lines.append)
    check = res.extra["se_check"]
    print(f"\nSE approximate mode: {check['sentence']}")
    assert check["passed"] and check["n"] >= 4 and res.meta()["incremental"]
    assert any("max |H - H_exact|" in ln for ln in lines) and any("APPROXIMATE" in ln for ln in lines)
    grid64, bound = reference64(model, IMG, A, window=16, stride=16, locations=LOCATIONS)
    err = float(np.nanmax(np.abs(res.grid - np.nan_to_num(grid64))))
    print(f"SE approximate mode vs float64 whole passes: max |H - H64| = {err:.3g} "
          f"({err / np.nanmax(grid64):.1e} of max H)")
    assert err <= max(bound, heatmap_module.SE_TOLERANCE * float(np.nanmax(grid64))), err


def test_sensitive_gates_exceed_the_tolerance_and_fall_back():
    """Gates 30x more sensitive than trained ones: the measured error (about 5e-3 of max H) exceeds 1e-4, so
    the heatmap is recomputed with whole encoder passes and is exact."""
    model = tiny_se_model(gate_std=1.0)
    res = heatmap(ProbFn(model), IMG, A, window=16, stride=16, locations=LOCATIONS)
    assert not res.extra["se_check"]["passed"] and res.extra["se_check"]["max_rel"] > heatmap_module.SE_TOLERANCE
    assert not res.meta()["incremental"]
    assert_float32_exact(res.grid, reference64(model, IMG, A, window=16, stride=16, locations=LOCATIONS))


def test_se_past_tolerance_falls_back_to_exact(monkeypatch):
    """Tolerance 0: the check fails, the heatmap is recomputed with whole encoder passes and is exact."""
    model = tiny_se_model()
    monkeypatch.setattr(heatmap_module, "SE_TOLERANCE", 0.0)
    lines: list[str] = []
    res = heatmap(ProbFn(model), IMG, A, window=16, stride=16, locations=LOCATIONS, log=lines.append)
    assert not res.extra["se_check"]["passed"] and "exceeded" in res.extra["se_check"]["sentence"]
    assert not res.meta()["incremental"] and not any("APPROXIMATE" in s for s in res.meta()["shortcuts"])
    assert_float32_exact(res.grid, reference64(model, IMG, A, window=16, stride=16, locations=LOCATIONS))


def test_planted_crop_mean_exceeds_the_tolerance(monkeypatch):
    """Planted error: SE treated as local (each crop squeezed over itself, the plain module's forward on a
    crop); the check against whole passes catches it and the heatmap falls back to exact passes."""
    import contextlib

    from matseg_nb.explain import squeeze_excite

    monkeypatch.setattr(squeeze_excite.SECache, "local_scales", lambda self, modules, boxes: contextlib.nullcontext())
    model = tiny_se_model(gate_std=0.03)  # the honest mode passes on it (test above)
    res = heatmap(ProbFn(model), IMG, A, window=16, stride=16, locations=LOCATIONS)
    print(f"\nplanted crop-mean SE: {res.extra['se_check']['sentence']}")
    assert not res.extra["se_check"]["passed"] and res.extra["se_check"]["max_rel"] > heatmap_module.SE_TOLERANCE
    assert_float32_exact(res.grid, reference64(model, IMG, A, window=16, stride=16, locations=LOCATIONS))


@pytest.mark.parametrize("encoder", ["se_resnet50"])
def test_smp_senet_encoder_runs_approximate_and_checked(encoder, monkeypatch):
    """On a small image a deep SE encoder would recompute most of itself: the approximate mode declines
    (exact whole passes, said so); forced on, it runs and is checked."""
    from _model_helpers import tiny_smp

    model = tiny_smp(encoder=encoder, classes=3)
    fn = ProbFn(model)
    assert fn.approximate and "SENetEncoder" in fn.shortcut_names[-1]
    img, a = rand_image(1, 64, 64, seed=2), box_mask(64, 64, (20, 40, 20, 40))
    locations = [(0, 0), (1, 1), (2, 2)]
    declined = heatmap(fn, img, a, window=16, stride=16, locations=locations)
    assert declined.extra["se_check"]["work_fraction"] > heatmap_module.SE_MAX_WORK_FRACTION
    assert "not used" in declined.extra["se_check"]["sentence"] and not declined.meta()["incremental"]
    monkeypatch.setattr(heatmap_module, "SE_MAX_WORK_FRACTION", 1.0)
    res = heatmap(fn, img, a, window=16, stride=16, locations=locations)
    print(f"\n{encoder}: {res.extra['se_check']['sentence']}")
    assert res.extra["se_check"]["n"] == 3 and res.meta()["incremental"]
