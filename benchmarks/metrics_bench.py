"""Case 3: IoU / Dice / wIoU over N masks of HxW with K classes: matseg_nb.metrics vs torchmetrics.

Both consume the same chunks of (prediction, ground truth) class-id maps; outputs compared: pooled per-class
IoU and Dice (torchmetrics MulticlassJaccardIndex / MulticlassF1Score with average=None; Dice == F1 per class)
and the per-image confusion-derived IoU means. wIoU has no torchmetrics equivalent with the paper's
class-frequency weights, so ours computes it in the same timed pass and the alternative does not.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import record, timed, write_results


def make_chunks(n: int, size: int, k: int, chunk: int, seed: int = 0):
    """Deterministic synthetic masks: blocky ground truth, predictions with ~10% of pixels flipped."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        coarse = rng.integers(0, k, size=(m, size // 16, size // 16), dtype=np.uint8)
        gt = np.kron(coarse, np.ones((16, 16), dtype=np.uint8))
        flip = rng.random(gt.shape) < 0.1
        pred = np.where(flip, rng.integers(0, k, size=gt.shape, dtype=np.uint8), gt)
        yield torch.from_numpy(pred), torch.from_numpy(gt)


def ours(chunks, k: int) -> dict:
    from matseg_nb.metrics import confusion_matrix, evaluate_confusions

    cms = [confusion_matrix(p, t, k) for pred, gt in chunks for p, t in zip(pred, gt, strict=True)]
    metrics, _ = evaluate_confusions(cms, [f"c{i}" for i in range(k)])
    return {
        "iou": np.array([metrics["per_class"][f"c{i}"]["iou"] for i in range(k)]),
        "dice": np.array([metrics["per_class"][f"c{i}"]["dice"] for i in range(k)]),
        "wiou": metrics["dataset_level"]["wiou"],
    }


def alternative(chunks, k: int) -> dict:
    from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

    jac = MulticlassJaccardIndex(num_classes=k, average=None)
    f1 = MulticlassF1Score(num_classes=k, average=None, multidim_average="global")
    for pred, gt in chunks:
        p, t = pred.long(), gt.long()
        jac.update(p, t)
        f1.update(p, t)
    return {"iou": jac.compute().double().numpy(), "dice": f1.compute().double().numpy()}


def run(quick: bool = False) -> list[dict]:
    n, size, k, chunk = (100, 256, 3, 25) if quick else (1000, 512, 3, 50)
    data = list(make_chunks(n, size, k, chunk))
    t_ours, a = timed(lambda: ours(data, k), repeat=2)
    t_alt, b = timed(lambda: alternative(data, k), repeat=2)
    diff = float(max(np.abs(a["iou"] - b["iou"]).max(), np.abs(a["dice"] - b["dice"]).max()))
    return [record("metrics", f"{n} masks {size}x{size}, K={k}", t_ours, "torchmetrics (IoU+F1, no wIoU)",
                   t_alt, diff, wiou_ours=a["wiou"])]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100 masks of 256 px instead of 1000 of 512 px")
    args = ap.parse_args(argv)
    rows = run(args.quick)
    print(write_results("metrics", rows))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
