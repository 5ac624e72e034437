"""Model-randomisation sanity check (Adebayo et al. 2018): planted cases with known answers.

* ``OffsetModel``: the learnt kernel reads x^2 12 px away; H ranks the windows over A's shifted copy.
  Re-initialised (a random 31x31 kernel reads the whole neighbourhood), H's ranking is lost: ``differs``.
* ``FixedFeatureModel``: the prediction is a fixed local feature through a 1x1 head; whatever the head's
  weights, H ranks windows alike: ``similar`` (the check fails, as it must for such a map).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _explain_helpers import box_mask, rand_image, tiny_model
from torch import nn

from matseg_nb.explain import heatmap
from matseg_nb.explain.randomisation import (
    RandomisationResult,
    cascade_steps,
    model_randomisation,
    randomised_copy,
    spearman_interval,
    verdict,
)
from matseg_nb.models.tiling import ScaledInputModel


class OffsetModel(nn.Module):
    """Single logit per pixel p = 8 x (x^2 at p + (12, 12)) - 8/3, a learnt 31x31 kernel (a delta)."""

    def __init__(self, offset: int = 12):
        super().__init__()
        self.segmentation_head = nn.Conv2d(1, 1, 31, padding=15)
        with torch.no_grad():
            self.segmentation_head.weight.zero_()
            self.segmentation_head.weight[0, 0, 15 + offset, 15 + offset] = 8.0
            self.segmentation_head.bias.fill_(-8 / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(x[:, :1] ** 2)


class FixedFeatureModel(nn.Module):
    """Single logit = head(5x5 mean of x^2): the feature has no weights, the head is one 1x1 convolution."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.head.weight.fill_(8.0)
            self.head.bias.fill_(-8 / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.avg_pool2d(x[:, :1] ** 2, 5, stride=1, padding=2, count_include_pad=False))


def _check(model, seed=0):
    img, a = rand_image(1, 64, 64, seed=3), box_mask(64, 64, (24, 40, 24, 40))
    res = heatmap(model, img, a, window=8, stride=4)
    return model_randomisation(model, img, a, res.grid, res.valid, 8, 4, seed=seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_learnt_offset_model_differs_once_randomised(seed):
    out = _check(OffsetModel(), seed)
    (step,) = out.steps
    assert step.modules == ["segmentation_head"] and step.n_locations == 25
    assert step.ci_high < 0.5 and out.verdict == "differs"
    assert out.sentence().startswith("H depends on what the model learnt")
    assert RandomisationResult.from_json(out.to_json()) == out


def test_fixed_feature_model_fails_the_check():
    out = _check(FixedFeatureModel())
    assert out.steps[0].spearman > 0.95 and out.verdict == "similar"
    assert "Model-randomisation check failed" in out.sentence()


def test_no_op_randomisation_gives_rank_correlation_one(monkeypatch):
    """Negative control: re-initialising nothing leaves H as it was (rho = 1)."""
    import matseg_nb.explain.randomisation as rnd

    monkeypatch.setattr(rnd, "cascade_steps", lambda model: [("nothing", [])])
    out = _check(OffsetModel())
    assert out.steps[0].spearman == pytest.approx(1.0) and out.verdict == "similar"


def test_cascade_finds_head_decoder_and_last_stage_also_inside_a_wrapper():
    model = tiny_model("Unet", 1, classes=3)
    assert cascade_steps(model) == [
        ("decoder head", ["segmentation_head"]), ("head and decoder", ["segmentation_head", "decoder"]),
        ("head, decoder and last encoder stage", ["segmentation_head", "decoder", "encoder.model.layer4"])]
    wrapped = cascade_steps(ScaledInputModel(model, 0.5))
    assert wrapped[-1][1] == ["inner.segmentation_head", "inner.decoder", "inner.encoder.model.layer4"]


def test_randomised_copy_changes_only_the_named_layers():
    model = tiny_model("Unet", 1, classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = randomised_copy(model, ["segmentation_head", "decoder"], seed=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
    changed = {k for k, v in twin.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("segmentation_head.", "decoder.")) for k in changed)
    assert any(k.startswith("segmentation_head.") for k in changed)
    again = randomised_copy(model, ["segmentation_head", "decoder"], seed=0)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in twin.state_dict().items())  # seeded


def test_interval_and_verdict():
    low, high = spearman_interval(0.0, 48)
    assert low == pytest.approx(-high) and 0.25 < high < 0.35  # 1.96 sqrt(1.06 / 45) = 0.30 in z
    assert verdict(*spearman_interval(0.1, 48)) == "differs"
    assert verdict(*spearman_interval(0.9, 48)) == "similar"
    assert verdict(*spearman_interval(0.5, 48)) == "undecided"
    assert verdict(*spearman_interval(0.1, 4)) == "undecided"  # too few locations: no claim
    assert np.isfinite(spearman_interval(0.99, 10)[1])


def test_partial_rank_correlation_removes_the_shared_overlap():
    """Two maps that share only their dependence on the overlap with A: raw rho high, partial rho near 0."""
    from scipy import stats

    from matseg_nb.explain.randomisation import partial_spearman

    rng = np.random.default_rng(0)
    overlap = rng.random(200)
    x, y = overlap + 0.2 * rng.random(200), overlap + 0.2 * rng.random(200)
    assert stats.spearmanr(x, y).statistic > 0.8 and abs(partial_spearman(x, y, overlap)) < 0.15
    assert partial_spearman(x, x + 1e-3 * rng.random(200), overlap) > 0.9  # what is shared beyond it stays


def test_undecided_says_how_many_locations_would_decide():
    from matseg_nb.explain.randomisation import RandomisationStep, locations_to_decide

    n = locations_to_decide(0.35)
    assert verdict(*spearman_interval(0.35, n, controls=1)) == "differs"
    assert verdict(*spearman_interval(0.35, n - 2, controls=1)) == "undecided"
    low, high = spearman_interval(0.35, 48, controls=1)
    step = RandomisationStep("decoder head", ["segmentation_head"], 0.35, low, high, 48, 0.8)
    out = RandomisationResult([step], verdict(low, high), available_locations=239)
    assert out.verdict == "undecided" and f"about {n} locations on A would decide" in out.sentence()
    assert f"--randomisation-locations {n}" in out.sentence()
    few = RandomisationResult([step], "undecided", available_locations=16)
    assert "more than the 16 at this stride" in few.sentence()


def test_a_prebuilt_twin_gives_the_same_check_and_is_the_one_used():
    """The first step's copy built (and timed) while the grid was chosen gives the same rank correlations as
    one built by the check itself; a copy of another seed in its place changes them (it is the one run)."""
    from matseg_nb.explain import ProbFn
    from matseg_nb.explain.randomisation import build_twin

    model = tiny_model("Unet")
    img, a = rand_image(1, 64, 64, seed=3), box_mask(64, 64, (24, 40, 24, 40))
    res = heatmap(model, img, a, window=8, stride=4)
    first = cascade_steps(model)[0][1]

    def run(prebuilt=None):
        out = model_randomisation(model, img, a, res.grid, res.valid, 8, 4, make_fn=ProbFn, prebuilt=prebuilt)
        return [(s.spearman, s.spearman_raw) for s in out.steps]

    fn, seconds = build_twin(model, first, ProbFn)
    assert isinstance(fn, ProbFn) and seconds > 0
    plain = run()
    assert run({tuple(first): fn}) == plain
    other = run({tuple(first): build_twin(model, first, ProbFn, seed=5)[0]})
    assert other[0] != plain[0] and other[1:] == plain[1:]
