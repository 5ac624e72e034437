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
    # class 1: num w1*2; union = GT-1 pixels (3, weight w1) + predicted 1 with GT 0 (1 pixel, weight w0)
    wiou1 = w[1] * 2 / (w[1] * 3 + w[0] * 1)
    # class 2: num w2*1; union = GT-2 pixels (2, w2), no false positives
    wiou2 = w[2] * 1 / (w[2] * 2)
    pc = M.per_class_scores(cm)
    assert pc["wiou"][1] == pytest.approx(wiou1)
    assert pc["wiou"][2] == pytest.approx(wiou2)
    s = M.summarize(cm)
    assert s["wiou"] == pytest.approx((w[1] * 2 + w[2]) / (w[1] * 3 + w[0] + w[2] * 2))


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
    # Eq. 3 per class == sklearn's sample-weighted Jaccard with pixel weight w of the true class
    w = M.class_weights(M.class_frequencies(cm))
    sk_w = jaccard_score(target.ravel(), pred.ravel(), average=None, labels=range(k), sample_weight=w[target.ravel()])
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
