"""Both QC questions per dataset with one model load and one feature pass (matseg_nb.qc.dataset_qc)."""

import numpy as np
import torch
from _qc_helpers import folder_dataset, tiny_run

from matseg_nb.loop import QCSettings
from matseg_nb.qc.dataset_qc import DatasetQC, qc_dataset, result_frames
from matseg_nb.qc.features import FeatureContext, ImageItem
from matseg_nb.qc.predictions import pred_view, predict_items
from matseg_nb.qc.session import _Extractor

torch.set_num_threads(1)


def test_crops_follow_the_image_not_its_position_and_features_are_extracted_once():
    rng = np.random.default_rng(0)
    imgs = [ImageItem(rng.integers(0, 255, (1, 80, 80)).astype(np.float32), f"i{k}", meta={"full_scale": 255.0})
            for k in range(4)]
    ext = _Extractor(("texture",), FeatureContext(), 32, 5, seed=0)
    calls = []
    inner = ext.fns["texture"]
    ext.fns["texture"] = lambda it, boxes: calls.append(it.name) or inner(it, boxes)
    batch, g = ext(imgs)
    alone, _ = ext([imgs[3]])
    np.testing.assert_array_equal(alone["texture"], batch["texture"][g == 3])
    assert calls == ["i0", "i1", "i2", "i3"]  # the lone call reused the cache
    other = _Extractor(("texture",), FeatureContext(), 32, 5, seed=0)  # a fresh cache: same crops, same features
    np.testing.assert_array_equal(other([imgs[3]])[0]["texture"], alone["texture"])


def test_centre_crop_prediction_scores_iou_on_the_crop(tmp_path):
    ds = folder_dataset(tmp_path / "ds", n_train=2, n_test=1)
    run = tiny_run(tmp_path / "run", ds)
    from matseg_nb.qc.session import QCSession

    s = QCSession.open(run)
    it = s.items("test")[0]
    predict_items([it], s.ctx, tile=512, probs=False, crop=64)
    view = pred_view(it)
    assert it.meta["pred_box"] == (16, 16, 64) and view.pred.shape == view.mask.shape == (64, 64)
    np.testing.assert_array_equal(view.mask, it.mask[16:80, 16:80])


def test_qc_dataset_answers_both_questions_in_words(tmp_path):
    ds = folder_dataset(tmp_path / "ds", n_train=4, n_test=3)
    other = folder_dataset(tmp_path / "other", n_train=2, n_test=2, seed=5)
    run = tiny_run(tmp_path / "run", ds)
    settings = QCSettings(shifts=("noise:strong", "brightness:strong"), extractors=("texture",), tile_size=48,
                          tiles_per_image=6, other_split="")
    res = qc_dataset(run, [str(other)], tmp_path / "qc", settings)
    assert [r.batch for r in res.screening] == ["split:test", "split:test@noise:strong", str(other)]
    assert res.screening[0].n_screened == 3 and res.screening[2].n_screened == 4
    sets = {(c.set, c.detector) for c in res.validation.checks}
    assert sets == {(n, d) for n in (str(other), "shift:noise:strong", "shift:brightness:strong")
                    for d in ("gmm", "ocsvm")}
    assert res.validation.verdict == "insufficient evidence"  # 3 held-out images cannot support "ready"
    assert DatasetQC.load(tmp_path / "qc") == res  # qc.json + screening/qc.json hold the same answers
    frames = result_frames(res)
    assert list(frames["screening"].columns) == ["batch", "image", "p_value", "flagged", "reason", "note"]
    assert {"auroc", "low", "high", "harm"} <= set(frames["validation"].columns)
    assert frames["screening"]["p_value"].between(0, 1).all()
    text = res.summary()
    assert "split:test:" in text and "images flagged at alpha=0.05" in text and "AUROC" in text
    assert (tmp_path / "qc" / "roc.png").is_file() and res.seconds["total"] > 0
