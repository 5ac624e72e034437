"""Screening statistics on synthetic scores/features (no models): validity, level, power, independence."""

import numpy as np
import pytest
from _qc_helpers import blob_image, clustered
from scipy.stats import binom, kstest

from matseg_nb.errors import UserError
from matseg_nb.qc.conformal import (
    MIN_POWER,
    TARGET_POWER,
    batch_power,
    batch_test,
    conformal_pvalues,
    image_rank_statistics,
)
from matseg_nb.qc.model import fit_qc
from matseg_nb.qc.results import ScreeningResult
from matseg_nb.qc.screening import Calibration, load_new_images, screen_scores, typicality_key


def test_conformal_pvalues_uniform_and_flag_rate_at_alpha():
    ps = []
    for seed in range(3000):
        rng = np.random.default_rng(seed)
        cal, new = rng.normal(size=99), rng.normal(size=1)
        ps.append(conformal_pvalues(cal, new)[0])
    ps = np.array(ps)
    assert kstest(ps, "uniform").pvalue > 1e-3  # discrete on {1/100, ..., 1}: close to uniform
    rate = (ps <= 0.05).mean()
    lo, hi = binom.ppf([0.0005, 0.9995], len(ps), 0.05) / len(ps)
    assert lo <= rate <= hi, rate


def test_batch_test_level_under_null_and_power_under_shift():
    null, alt = [], []
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        cal = rng.normal(size=20)
        null.append(batch_test(cal, rng.normal(size=8))["verdict"] == "shifted")
        alt.append(batch_test(cal, rng.normal(-2.0, 1.0, size=8))["verdict"] == "shifted")
    assert np.mean(null) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 1000)
    assert np.mean(alt) > 0.95


def test_batch_test_declines_with_too_few_images():
    assert batch_test(np.arange(4.0), np.array([-10.0]))["verdict"] == "too few images to tell"
    assert batch_test(np.arange(20.0), np.array([-10.0]))["verdict"] == "shifted"  # 1/21 <= 0.05


def _model_and_blocks():
    ref, groups = clustered(12, 8, 6, seed=0)
    model = fit_qc({"e": ref}, groups, detectors=("gmm", "ocsvm"), detector_options={"gmm": {"max_components": 2}})
    return model


def test_lone_image_scores_exactly_as_in_a_batch_of_20():
    model = _model_and_blocks()
    x, g = clustered(20, 8, 6, seed=5)
    batch, _ = model.score({"e": x}, g)
    lone, _ = model.score({"e": x[g == 7]}, np.zeros(8, int))
    for d in ("gmm", "ocsvm"):
        np.testing.assert_array_equal(lone[d], batch[d][g == 7])


@pytest.mark.parametrize("n_images", [1, 2, 5])
def test_small_and_degenerate_sets_give_finite_answers(n_images):
    model = _model_and_blocks()
    rng = np.random.default_rng(n_images)
    x = np.repeat(rng.normal(size=(1, 6)), 8 * n_images, axis=0)  # identical crops, zero distances
    scores, feats = model.score({"e": x}, np.repeat(np.arange(n_images), 8))
    assert np.isfinite(feats).all() and all(np.isfinite(s).all() for s in scores.values())
    cx, cg = clustered(4, 8, 6, seed=9)
    cal_scores, _ = model.score({"e": cx}, cg)
    res = screen_scores(Calibration(cal_scores["gmm"], cg), [scores["gmm"][i * 8:(i + 1) * 8] for i in range(n_images)],
                        [f"im{i}" for i in range(n_images)])
    assert all(np.isfinite(i.p_value) for i in res.images)
    assert res.batch_verdict in ("in distribution", "shifted", "too few images to tell")
    assert ScreeningResult.from_json(res.to_json()) == res and res.batch in res.summary()


def test_duplicate_reference_crops_stay_finite():
    ref, groups = clustered(6, 8, 4, seed=1)
    ref[groups == 0] = ref[0]  # a constant image: all its crops identical
    ref[groups == 1] = ref[0]
    model = fit_qc({"e": ref}, groups, detectors=("ocsvm", "kde"))
    scores, feats = model.score({"e": ref[:8] + 1e-9}, np.zeros(8, int))
    assert np.isfinite(feats).all() and all(np.isfinite(s).all() for s in scores.values())


def test_screening_flags_clear_shift_and_not_in_distribution():
    rng = np.random.default_rng(0)
    cal = Calibration(rng.normal(size=20 * 16), np.repeat(np.arange(20), 16))
    same = screen_scores(cal, [rng.normal(size=16) for _ in range(10)], [f"a{i}" for i in range(10)])
    shifted = screen_scores(cal, [rng.normal(-6, 1, size=16) for _ in range(10)], [f"b{i}" for i in range(10)])
    assert same.batch_verdict == "in distribution" and same.n_flagged <= 2
    assert shifted.batch_verdict == "shifted" and shifted.n_flagged == 10
    assert "less typical than" in shifted.images[0].reason


def test_bad_inputs_are_one_line_errors_or_notes(tmp_path):
    import imageio.v3 as iio

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="found none"):
        load_new_images(str(tmp_path / "empty"), channels=1)
    good = tmp_path / "mix"
    good.mkdir()
    rng = np.random.default_rng(0)
    iio.imwrite(good / "ok.png", blob_image(rng)[0])
    (good / "broken.png").write_bytes(b"not a png")
    iio.imwrite(good / "rgb.png", np.stack([blob_image(rng)[0]] * 3, -1)[..., :3] + np.uint8([0, 1, 2]))
    iio.imwrite(good / "deep.png", blob_image(rng)[0].astype(np.uint16) * 257)
    items, notes = load_new_images(str(good), channels=1, dtype="uint8")
    assert [i.name for i in items] == ["deep", "ok"] and items[1].meta["full_scale"] == 255.0
    assert items[0].meta["full_scale"] == 65535.0 and "uint16 file, training images are uint8" in notes["deep"]
    assert notes["broken"].startswith("unreadable") and "channel" in notes["rgb"]


def test_no_shift_found_is_worded_by_the_tests_power():
    rng = np.random.default_rng(1)

    def screen(n_cal: int, n_new: int):
        names = [f"a{i}" for i in range(n_new)]
        return screen_scores(Calibration(rng.normal(size=n_cal * 16), np.repeat(np.arange(n_cal), 16)),
                             [rng.normal(size=16) for _ in names], names)

    none, few, many = screen(2, 4), screen(3, 4), screen(20, 4)  # powers 0 (p >= 1/15), about 0.67, 0.99
    assert none.batch_power < MIN_POWER <= few.batch_power < TARGET_POWER <= many.batch_power
    assert none.batch_p_value is None and none.batch_verdict == "too few images to tell"
    assert any("cannot reach" in n for n in none.notes)
    assert few.batch_p_value > 0.05 and few.batch_verdict == "in distribution" and few.batch_evidence == "weak"
    assert few.sentence().startswith("in distribution, weak evidence")
    assert any(n.startswith("weak evidence") and "of the time" in n for n in few.notes)
    assert many.batch_verdict == "in distribution" and many.batch_evidence == "strong"
    assert many.sentence().startswith("in distribution (")


def _image_tiles(rng, n_images, tiles=16, shift=0.0):
    """Tile scores of images with an image effect (sd 1) and tile noise (sd 0.5): tiles of one image are dependent."""
    return [rng.normal(shift + rng.normal(), 0.5, size=tiles) for _ in range(n_images)]


@pytest.mark.parametrize("n_cal", [3, 4, 5])
def test_batch_screening_level_and_power_at_few_calibration_images(n_cal):
    """Exchangeable images (dependent tiles) are called shifted at most alpha of the time; a clear shift
    (every image 4 sd less typical) is called shifted whenever the sizes allow (1 / C(n + m, m) <= alpha)."""
    m, sims = 6, 600
    null, alt = [], []
    for seed in range(sims):
        rng = np.random.default_rng(seed)
        cal_tiles = _image_tiles(rng, n_cal)
        cal = Calibration(np.concatenate(cal_tiles), np.repeat(np.arange(n_cal), 16))
        names = [f"n{i}" for i in range(m)]
        null.append(screen_scores(cal, _image_tiles(rng, m), names).batch_verdict == "shifted")
        alt.append(screen_scores(cal, _image_tiles(rng, m, shift=-4.0), names).batch_verdict == "shifted")
    assert np.mean(null) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / sims)
    assert np.mean(alt) > 0.9


def test_batch_power_grows_with_images_and_declines_below_the_floor():
    assert batch_power(3, 2) == 0.0  # 1 / C(5, 2) = 0.1 > 0.05: nothing can be detected
    assert batch_power(3, 4) < batch_power(3, 10) < batch_power(10, 10)
    assert batch_power(20, 20) > 0.99 and batch_power(4, 4) == batch_power(4, 4)  # deterministic


def test_image_rank_statistics_are_symmetric_in_the_pooled_images():
    rng = np.random.default_rng(0)
    keys = [rng.normal(size=(5, 3)).round(1) for _ in range(6)]
    stats = image_rank_statistics(keys)
    order = [3, 0, 5, 1, 4, 2]
    np.testing.assert_allclose(image_rank_statistics([keys[i] for i in order]), stats[order])
    assert stats.sum() == pytest.approx(sum(range(1, 31)) / 5)


def test_typicality_key_orders_crops_outside_the_support_by_distance():
    score = np.array([0.5, -0.2, -0.1, -0.1])
    log_nn = np.array([[-1.0, -0.5], [-0.2, -0.1], [0.5, 0.9], [1.5, 2.0]])  # last two outside the support
    key = typicality_key(score, log_nn)
    p = conformal_pvalues(key, key)  # rank of each crop among the four
    assert list(np.argsort(p)) == [3, 2, 1, 0]  # far outside < just outside < inside, whatever the detector says


def test_weak_in_distribution_needs_no_flagged_image():
    rng = np.random.default_rng(3)
    cal = Calibration(rng.normal(size=3 * 16), np.repeat(np.arange(3), 16))
    tiles = [rng.normal(size=16), rng.normal(size=16), rng.normal(-30.0, 0.1, size=16), rng.normal(size=16)]
    res = screen_scores(cal, tiles, ["a", "b", "far", "c"])
    # one image far off, three typical: the batch test is not significant with 4 vs 3 images, and the
    # flagged image keeps the batch undecided rather than a weak "in distribution"
    assert res.n_flagged == 1 and res.batch_power < TARGET_POWER and res.batch_p_value > 0.05
    assert res.batch_verdict == "too few images to tell" and res.batch_evidence == ""
    assert any("flagged, but the batch test is not significant" in n for n in res.notes)
