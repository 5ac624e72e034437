import numpy as np
import pytest
import torch
from _model_helpers import tiny_smp

from matseg_nb.errors import UserError
from matseg_nb.qc.features import (
    FeatureContext,
    ImageItem,
    make_extractor,
    morphology_vector,
    tile_boxes,
)
from matseg_nb.qc.shifts import all_shift_specs, apply_shift, parse_shift, shift_mask

torch.set_num_threads(1)


def _item(seed=0, size=96):
    rng = np.random.default_rng(seed)
    img = (rng.random((1, size, size)) * 200 + 20).astype(np.float32)
    probs = torch.softmax(torch.randn(3, size, size), 0).numpy()
    return ImageItem(img, "x", probs=probs, pred=probs.argmax(0))


def test_encoder_features_pool_every_stage():

    model = tiny_smp(classes=3, seed=None)
    ctx = FeatureContext(model=model, num_classes=3)
    boxes = tile_boxes(96, 96, 64, 3, seed=0)
    f = make_extractor("encoder", ctx)(_item(), boxes)
    assert f.shape == (3, sum(model.encoder.out_channels[1:]))
    assert np.isfinite(f).all() and f.std(0).max() > 0


def test_texture_and_prediction_features_shapes_and_sensitivity():
    ctx = FeatureContext(num_classes=3)
    it = _item()
    boxes = tile_boxes(96, 96, 64, 2, seed=1)
    tex = make_extractor("texture", ctx)
    a = tex(it, boxes)
    b = tex(ImageItem(apply_shift(it.image, "blur:strong", 0)), boxes)
    assert a.shape == b.shape and np.isfinite(a).all()
    assert not np.allclose(a, b)  # blur changes the texture descriptor
    assert make_extractor("morphology", ctx)(it, boxes).shape == (2, 24)
    assert make_extractor("softmax", ctx)(it, boxes).shape == (2, 11)


def test_morphology_counts_components():
    pred = np.zeros((40, 40), dtype=np.int64)
    pred[5:10, 5:10] = 1
    pred[20:30, 20:30] = 1
    v = morphology_vector(pred, 2)
    assert v[8] == pytest.approx(125 / 1600)  # class-1 area fraction
    assert v[9] == pytest.approx(2 / 1600 * 1e4)  # two components per 10^4 px


def test_unknown_or_offline_extractors_fail_fast():
    with pytest.raises(UserError, match="expected one of"):
        make_extractor("nope", FeatureContext())
    with pytest.raises(UserError, match="encoder"):
        make_extractor("encoder", FeatureContext())
    with pytest.raises(UserError, match="weights"):
        make_extractor("timm:resnet18@/nonexistent/weights.pth", FeatureContext())


def test_shifts_deterministic_and_in_range():
    img = np.random.default_rng(0).integers(0, 256, (1, 64, 64)).astype(np.float32)
    for spec in all_shift_specs():
        a, b = apply_shift(img, spec, seed=3), apply_shift(img, spec, seed=3)
        assert a.shape == img.shape and a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, img), spec
        assert a.min() >= 0 and a.max() <= (65535 if spec.startswith("bitdepth_up") else 255)
    mild = np.abs(apply_shift(img, "noise:mild", 1) - img).mean()
    strong = np.abs(apply_shift(img, "noise:strong", 1) - img).mean()
    assert strong > 2 * mild
    assert shift_mask(np.ones((64, 64), dtype=np.int64), "rescale:strong").shape == (64, 64)
    with pytest.raises(UserError):
        parse_shift("noise:extreme")
