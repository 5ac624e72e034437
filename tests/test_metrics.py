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
    assert pc["wiou"][1] == pytest.approx(wiou1)
    assert pc["wiou"][2] == pytest.approx(wiou2)
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
    """docs/metrics.md example, sigma = 1: a far false positive costs more than a near one."""
    target = np.array([[0, 0, 1, 1, 0, 0]])
    w = M.boundary_weights(target == 1, sigma=1.0)
    e1, e2 = 1 - math.exp(-1), 1 - math.exp(-2)
    np.testing.assert_allclose(w, [[e2, e1, e1, e1, e1, e2]])
    near = np.array([[0, 1, 1, 1, 0, 0]])
    far = np.array([[1, 0, 1, 1, 0, 0]])
    assert M.boundary_wiou(near, target, 2, sigma=1.0) == pytest.approx(2 / 3)
    assert M.boundary_wiou(far, target, 2, sigma=1.0) == pytest.approx(2 * e1 / (2 * e1 + e2))
    assert M.boundary_wiou(target, target, 2) == pytest.approx(1.0)


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
    assert s_over < 0.15 and s_all < 0.05  # plain IoU: 0.10 and 0.025


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
    np.testing.assert_allclose(pc["wiou"], sk_w)


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
