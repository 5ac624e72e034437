"""Metrics against hand-computed cases and independent implementations (scikit-learn, torchmetrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from matseg_nb import metrics as M

# 3x3 image, classes 0 (background), 1, 2
TARGET = np.array([[0, 0, 1], [0, 1, 1], [2, 2, 0]])
PRED = np.array([[0, 1, 1], [0, 1, 0], [2, 0, 0]])


def test_confusion_matrix_hand():
    cm = M.confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == torch.int64
    # rows = truth, cols = prediction
    expected = [[3, 1, 0], [1, 2, 0], [1, 0, 1]]
    assert cm.tolist() == expected


def test_per_class_hand():
    cm = M.confusion_matrix(PRED, TARGET, 3)
    pc = M.per_class_scores(cm)
    # class 1: TP=2 FP=1 FN=1 -> IoU 2/4, Dice 4/6, PA 2/3
    assert pc["iou"][1] == pytest.approx(0.5)
    assert pc["dice"][1] == pytest.approx(4 / 6)
    assert pc["pixel_accuracy"][1] == pytest.approx(2 / 3)
    # class 2: TP=1 FP=0 FN=1 -> IoU 1/2, Dice 2/3
    assert pc["iou"][2] == pytest.approx(0.5)
    assert pc["dice"][2] == pytest.approx(2 / 3)
    s = M.summarize(cm)
    assert s["iou"] == pytest.approx(0.5)  # mean over classes 1,2 only
    assert s["dice"] == pytest.approx((4 / 6 + 2 / 3) / 2)
    assert s["pixel_accuracy"] == pytest.approx(6 / 9)


def test_wiou_hand():
    cm = M.confusion_matrix(PRED, TARGET, 3)
    # GT frequencies 4/9, 3/9, 2/9 -> inverse 9/4, 3, 9/2, normalised
    inv = np.array([9 / 4, 3, 9 / 2])
    w = inv / inv.sum()
    np.testing.assert_allclose(M.class_weights(M.class_frequencies(cm)), w)
    # class 1: 2 TP (weight w1); 1 miss (GT 1, pred ?) and 1 false positive (GT 0, pred 1), each (w_t + w_p) / 2
    c = cm.numpy()
    pw = (w[:, None] + w[None, :]) / 2 * c
    wiou1 = pw[1, 1] / (pw[1].sum() + pw[:, 1].sum() - pw[1, 1])
    wiou2 = pw[2, 2] / (pw[2].sum() + pw[:, 2].sum() - pw[2, 2])
    pc = M.per_class_scores(cm)
    assert pc["wiou_class_freq"][1] == pytest.approx(wiou1)
    assert pc["wiou_class_freq"][2] == pytest.approx(wiou2)
    assert np.isnan(pc["wiou"]).all()  # Cho wIoU needs label maps, not counts
    assert pw[0, 1] == pytest.approx((w[0] + w[1]) / 2 * c[0, 1])


def test_class_frequency_wiou_all_foreground_does_not_beat_partial():
    """10% foreground: 'everything foreground' must score below a correct half prediction."""
    target = np.zeros((10, 10), dtype=np.int64)
    target[:, :1] = 1  # 10 foreground pixels
    everything = np.ones_like(target)
    half = np.zeros_like(target)
    half[:5, :1] = 1
    w = M.class_weights(M.class_frequencies(M.confusion_matrix(target, target, 2)))  # [0.1, 0.9]
    s_all = M.class_frequency_wiou(M.confusion_matrix(everything, target, 2), w)
    s_half = M.class_frequency_wiou(M.confusion_matrix(half, target, 2), w)
    # by hand: all = 0.9*10 / (0.9*10 + 0.5*90) = 1/6;  half = 0.9*5 / (0.9*5 + 0.5*5) = 9/14
    assert s_all == pytest.approx(1 / 6) and s_half == pytest.approx(9 / 14)
    assert s_all < s_half


def test_boundary_wiou_hand_example():
    """docs/metrics.md example (alpha = 1): Cho's weights emphasise the boundary, so a false positive next to
    the object costs more than one further away."""
    target = np.array([[0, 0, 1, 1, 0, 0]])
    # class 1: distance 1 px, max 1 -> 1/1.01; class 0: distances 2 1 . . 1 2, max 2 -> 2/2.01, 1/2.01
    d = np.array([[2 / 2.01, 1 / 2.01, 1 / 1.01, 1 / 1.01, 1 / 2.01, 2 / 2.01]])
    np.testing.assert_allclose(M.boundary_distance_map(target, 2), d)
    w = np.exp(-d)
    np.testing.assert_allclose(M.boundary_weight_map(target, 2), w)
    near = np.array([[0, 1, 1, 1, 0, 0]])
    far = np.array([[1, 0, 1, 1, 0, 0]])
    tp = 2 * w[0, 2]
    assert M.boundary_wiou(near, target, 2) == pytest.approx(tp / (tp + w[0, 1]))  # 0.550
    assert M.boundary_wiou(far, target, 2) == pytest.approx(tp / (tp + w[0, 0]))  # 0.668
    assert M.boundary_wiou(near, target, 2) < M.boundary_wiou(far, target, 2)
    assert M.boundary_wiou(target, target, 2) == pytest.approx(1.0)
    # alpha -> 0: every pixel weighs 1, plain IoU (3 px union, 2 px intersection)
    assert M.boundary_wiou(near, target, 2, alpha=1e-9) == pytest.approx(2 / 3)


def test_boundary_wiou_matches_reference_loop():
    """Cho's reference code (github.com/engzenia/wIoU, evaluation_wiou.ipynb) as a per-pixel loop."""
    from scipy.ndimage import distance_transform_edt

    rng = np.random.default_rng(0)
    target = np.zeros((24, 24), dtype=np.int64)
    target[4:14, 3:12] = 1
    target[15:22, 10:20] = 2
    pred = np.where(rng.random(target.shape) < 0.15, rng.integers(0, 3, target.shape), target)
    dist = np.zeros(target.shape)
    for c in range(3):
        d = distance_transform_edt(target == c)
        dist += d / (d.max() + 0.01)
    weight = np.exp(-1.0 * dist)
    scores = []
    for c in (1, 2):
        gt, tp, fp = 0.0, 0.0, 0.0
        for i in range(24):
            for j in range(24):
                gt += weight[i, j] * (target[i, j] == c)
                tp += weight[i, j] * (target[i, j] == c and pred[i, j] == c)
                fp += weight[i, j] * (target[i, j] != c and pred[i, j] == c)
        scores.append(tp / (gt + fp))
    assert M.boundary_wiou(pred, target, 3) == pytest.approx(np.mean(scores))


def test_boundary_wiou_everything_foreground_and_10x_oversegmentation():
    target = np.zeros((40, 40), dtype=np.int64)
    target[15:25, 18:22] = 1  # 40 px, 2.5% of the image
    partial = np.zeros_like(target)
    partial[15:20, 18:22] = 1  # the correct top half, nothing else
    over = np.zeros_like(target)
    over[10:30, 10:30] = 1  # 400 px containing the object: 10x over-segmentation
    everything = np.ones_like(target)
    s_partial = M.boundary_wiou(partial, target, 2)
    s_over = M.boundary_wiou(over, target, 2)
    s_all = M.boundary_wiou(everything, target, 2)
    assert s_all < s_over < s_partial
    assert s_partial == pytest.approx(0.5)  # symmetric object: the top half holds half the weight
    assert s_over < 0.08 and s_all < 0.025  # plain IoU: 0.10 and 0.025


def test_boundary_wiou_all_foreground_on_10_percent_foreground():
    target = np.zeros((50, 50), dtype=np.int64)
    target[:, :5] = 1  # 10% foreground
    half = np.zeros_like(target)
    half[:25, :5] = 1
    s_all = M.boundary_wiou(np.ones_like(target), target, 2)
    assert s_all < 0.1 < M.boundary_wiou(half, target, 2)  # the class-frequency wIoU (GT weights only) gave 0.5


def test_evaluate_confusions_boundary_wiou_keys():
    """``wiou`` in metrics.json / per_image.csv is Cho's; ``wiou_class_freq`` keeps the seed paper's Eq. 3."""
    ta = np.zeros((8, 8), dtype=np.int64)
    ta[2:6, 2:6] = 1
    pa = np.zeros_like(ta)
    pa[2:6, 2:4] = 1
    tb = ta.copy()
    pb = tb.copy()
    cms = [M.confusion_matrix(pa, ta, 2), M.confusion_matrix(pb, tb, 2)]
    wcms = [M.boundary_weighted_confusion(pa, ta, 2), M.boundary_weighted_confusion(pb, tb, 2)]
    metrics, rows = M.evaluate_confusions(cms, ["bg", "fg"], ["a", "b"], weighted_cms=wcms)
    row_a = next(r for r in rows if r["image"] == "a" and r["class_id"] == 1)
    assert row_a["wiou"] == pytest.approx(M.boundary_wiou(pa, ta, 2))
    assert metrics["per_image_mean"]["wiou"] == pytest.approx((M.boundary_wiou(pa, ta, 2) + 1.0) / 2)
    pooled = wcms[0] + wcms[1]
    assert metrics["dataset_level"]["wiou"] == pytest.approx(pooled[1, 1] / (pooled[1].sum() + pooled[:, 1].sum()
                                                                              - pooled[1, 1]))
    assert metrics["dataset_level"]["wiou_class_freq"] is not None
    without, _ = M.evaluate_confusions(cms, ["bg", "fg"], ["a", "b"])
    assert without["dataset_level"]["wiou"] is None  # no label maps: n/a, not a wrong number


def test_empty_class_is_nan_and_excluded():
    target = np.zeros((4, 4), dtype=np.int64)
    pred = np.zeros((4, 4), dtype=np.int64)
    target[0, 0] = 1
    pred[0, 0] = 1
    cm = M.confusion_matrix(pred, target, 3)
    pc = M.per_class_scores(cm)
    assert math.isnan(pc["iou"][2]) and math.isnan(pc["dice"][2])
    assert M.summarize(cm)["iou"] == 1.0  # class 2 empty in GT and prediction: excluded, not 0 or 1


def test_false_positive_on_absent_class_scores_zero():
    target = np.zeros((2, 2), dtype=np.int64)
    pred = np.array([[0, 2], [0, 0]])
    pc = M.per_class_scores(M.confusion_matrix(pred, target, 3))
    assert pc["iou"][2] == 0.0
    assert math.isnan(pc["iou"][1])


def test_ignore_label_skipped():
    target = np.array([0, 1, 255])
    pred = np.array([0, 1, 1])
    assert int(M.confusion_matrix(pred, target, 2).sum()) == 2


def _random_pair(seed: int, k: int = 4, shape=(3, 40, 50)):
    rng = np.random.default_rng(seed)
    target = rng.choice(k, size=shape, p=[0.7, 0.2, 0.08, 0.02][:k])
    pred = np.where(rng.random(shape) < 0.7, target, rng.integers(0, k, size=shape))
    return pred, target


@pytest.mark.parametrize("seed", [0, 1])
def test_against_sklearn(seed):
    from sklearn.metrics import confusion_matrix, f1_score, jaccard_score

    pred, target = _random_pair(seed)
    k = 4
    cm = M.confusion_matrix(pred, target, k)
    np.testing.assert_array_equal(cm.numpy(), confusion_matrix(target.ravel(), pred.ravel(), labels=range(k)))
    pc = M.per_class_scores(cm)
    np.testing.assert_allclose(pc["iou"], jaccard_score(target.ravel(), pred.ravel(), average=None, labels=range(k)))
    np.testing.assert_allclose(pc["dice"], f1_score(target.ravel(), pred.ravel(), average=None, labels=range(k)))
    # Eq. 3 per class == sklearn's sample-weighted Jaccard with pixel weight (w_true + w_pred) / 2
    w = M.class_weights(M.class_frequencies(cm))
    pixel_w = (w[target.ravel()] + w[pred.ravel()]) / 2
    sk_w = jaccard_score(target.ravel(), pred.ravel(), average=None, labels=range(k), sample_weight=pixel_w)
    np.testing.assert_allclose(pc["wiou_class_freq"], sk_w)


def test_against_torchmetrics():
    from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

    pred, target = _random_pair(3)
    p, t = torch.as_tensor(pred), torch.as_tensor(target)
    cm = M.confusion_matrix(p, t, 4)
    pc = M.per_class_scores(cm)
    tm_iou = MulticlassJaccardIndex(num_classes=4, average="none")(p, t).numpy()
    tm_f1 = MulticlassF1Score(num_classes=4, average="none", multidim_average="global")(p, t).numpy()
    np.testing.assert_allclose(pc["iou"], tm_iou, rtol=1e-6)
    np.testing.assert_allclose(pc["dice"], tm_f1, rtol=1e-6)


def test_evaluate_confusions_pooled_vs_per_image():
    # image A perfect on class 1; image B misses class 1 entirely
    ta = np.array([[0, 1], [1, 1]])
    pa = ta.copy()
    tb = np.array([[0, 0], [0, 1]])
    pb = np.zeros_like(tb)
    cms = [M.confusion_matrix(pa, ta, 2), M.confusion_matrix(pb, tb, 2)]
    metrics, rows = M.evaluate_confusions(cms, ["bg", "fg"], ["a", "b"])
    assert metrics["per_image_mean"]["iou"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert metrics["dataset_level"]["iou"] == pytest.approx(3 / 4)  # pooled TP 3, FN 1
    assert metrics["per_class"]["fg"]["iou"] == pytest.approx(3 / 4)
    assert len(rows) == 4 and {r["image"] for r in rows} == {"a", "b"}
    row_b_fg = next(r for r in rows if r["image"] == "b" and r["class_id"] == 1)
    assert row_b_fg["iou"] == 0.0 and row_b_fg["gt_fraction"] == 0.25 and row_b_fg["pred_fraction"] == 0.0
