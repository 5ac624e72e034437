"""How many more held-out images the QC detector validation needs, in words (pure functions, no I/O).

Readiness (:func:`matseg_nb.qc.validation.readiness`) needs, on a harmful shift, a lower 95% AUROC bound
above the threshold and at least :data:`~matseg_nb.qc.validation.MIN_IMAGES` images on a side. The
interval's variance is floored at A(1 - A) / n (n images on the smaller side, docs/qc.md), and that floor
is what decides at these sizes, so the lower bound exceeds the threshold t with probability ``power`` when

    n >= (z_{(1+level)/2} + z_power)^2 * A (1 - A) / (A - t)^2

for the true AUROC A. A is planned from the observed AUROC with half a discordant pair added,
A_plan = (A_obs * n_id * n_ood + 0.5) / (n_id * n_ood + 1), so a perfect separation of 4 vs 4 images
(A_obs = 1) plans for 0.97, not for a certainty; for an observed AUROC of 1 the sentence also gives the
count at which a perfect separation that stays perfect would suffice (:func:`perfect_separation_images`). The count is per side; a shifted copy of a held-out image
adds one image to each side, so it is also the number of held-out images. ``tests/test_qc_power.py``
checks the count against simulation (normal location model, the real interval code).
"""

from __future__ import annotations

import math

from scipy.stats import norm

from matseg_nb.qc.validation import MIN_IMAGES

#: the power the count is planned for
TARGET_POWER = 0.8


def planning_auroc(auroc: float, n_id: int, n_ood: int) -> float:
    """The observed AUROC with half a discordant pair added: (A n_id n_ood + 0.5) / (n_id n_ood + 1)."""
    pairs = max(1, n_id * n_ood)
    return (auroc * pairs + 0.5) / (pairs + 1)


def images_needed(auroc: float, threshold: float, level: float = 0.95, power: float = TARGET_POWER,
                  min_images: int = MIN_IMAGES) -> int | None:
    """Images per side for the lower ``level`` AUROC bound to exceed ``threshold`` with probability ``power``
    at true AUROC ``auroc``; at least ``min_images``. None when ``auroc <= threshold`` (no count would)."""
    if auroc <= threshold:
        return None
    z = norm.ppf(0.5 + level / 2) + norm.ppf(power)
    return max(min_images, math.ceil(z * z * auroc * (1 - auroc) / (auroc - threshold) ** 2))


def perfect_separation_images(threshold: float, level: float = 0.95, min_images: int = MIN_IMAGES,
                              largest: int = 10_000) -> int | None:
    """Images per side at which a perfect separation (observed AUROC 1) puts the floored lower ``level``
    bound above ``threshold`` (A_c = 1 - 1/(2 n^2), variance A_c (1 - A_c) / n); at least ``min_images``."""
    z = norm.ppf(0.5 + level / 2)
    for n in range(max(2, min_images), largest):
        a_c = 1 - 1 / (2 * n * n)
        if a_c - z * math.sqrt(a_c * (1 - a_c) / n) > threshold:
            return n
    return None


def validation_power_sentence(set_name: str, auroc: float | None, n_id: int, n_ood: int, threshold: float,
                              level: float = 0.95, power: float = TARGET_POWER) -> str:
    """One sentence: how many more held-out images would decide readiness on ``set_name`` at ``power``.

    E.g. "x: AUROC 0.90 on 8 vs 8 images; about 20 images on a side (12 more each) at AUROC 0.89, for the
    lower 95% bound to clear 0.7 with 80% power". A shifted copy of a held-out image adds one image to each
    side, so for a shift "k more each" is k more held-out images."""
    if auroc is None or n_id == 0 or n_ood == 0:
        return f"{set_name}: no AUROC (a side has no images); held-out and {set_name} images are needed"
    plan = planning_auroc(auroc, n_id, n_ood)
    need = images_needed(plan, threshold, level, power)
    head = f"{set_name}: AUROC {auroc:.2f} on {n_id} vs {n_ood} images"
    goal = f"for the lower {100 * level:.0f}% bound to clear {threshold:g} with {100 * power:.0f}% power"

    def side(n: int) -> str:
        """"N on a side (k more held-out, j more <set> images)"."""
        if n - n_id == n - n_ood > 0:
            return f"{n} images on a side ({n - n_id} more each)"
        more = [f"{n - n_id} more held-out"] if n > n_id else []
        more += [f"{n - n_ood} more {set_name}"] if n > n_ood else []
        return f"{n} images on a side ({', '.join(more)})" if more else f"{n} images on a side"

    perfect = perfect_separation_images(threshold, level) if auroc >= 1.0 else None
    if perfect is not None and perfect > min(n_id, n_ood):
        planned = (f"about {side(need)} if the AUROC is {plan:.2f}" if need is not None else
                   f"no count if the AUROC is {plan:.2f} (half a discordant pair added)")
        return f"{head}; {side(perfect)} if the separation stays perfect, {planned}, {goal}"
    if need is None:
        return (f"{head}; at AUROC {plan:.2f} no number of images puts the lower {100 * level:.0f}% bound above "
                f"{threshold:g}: a detector that separates this set better is needed")
    if need <= min(n_id, n_ood):
        return f"{head}: enough images for {100 * power:.0f}% power at this threshold ({need} on a side)"
    return f"{head}; about {side(need)} at AUROC {plan:.2f}, {goal}"


def readiness_power_sentence(rows: list[dict], threshold: float, level: float = 0.95, power: float = TARGET_POWER
                             ) -> str | None:
    """The power sentence of the set that needs the most images, over validation ``rows`` {"set", "detector",
    "auroc", "n_id", "n_ood", "harm"} (readiness counts harmful / harm-unknown sets under gmm and ocsvm, and
    a set is decided by its worse detector). None when no such row has an AUROC."""
    worst: dict[str, dict] = {}
    for r in rows:
        if r.get("harm") == "harmless" or r.get("detector") not in ("gmm", "ocsvm") or r.get("auroc") is None:
            continue
        if r["set"] not in worst or r["auroc"] < worst[r["set"]]["auroc"]:
            worst[r["set"]] = r

    def need(r: dict) -> float:
        n = images_needed(planning_auroc(r["auroc"], r["n_id"], r["n_ood"]), threshold, level, power)
        return math.inf if n is None else n - min(r["n_id"], r["n_ood"])

    if not worst:
        return None
    r = max(sorted(worst.values(), key=lambda x: x["set"]), key=need)
    return validation_power_sentence(r["set"], r["auroc"], r["n_id"], r["n_ood"], threshold, level, power)


def calibration_images_needed(n_calibration: int, n_batch: int, level: float = 0.05, power: float = TARGET_POWER,
                              largest: int = 200) -> int | None:
    """The fewest calibration images with which the screening's batch test of ``n_batch`` new images detects a
    strong shift with probability ``power`` (:func:`matseg_nb.qc.conformal.batch_power`); None above ``largest``."""
    from matseg_nb.qc.conformal import batch_power

    for n in range(max(1, n_calibration), largest + 1):
        if batch_power(n, n_batch, level) >= power:
            return n
    return None


def screening_power_words(n_calibration: int, n_batch: int, level: float = 0.05, power: float = TARGET_POWER) -> str:
    """E.g. "1 more annotated image not trained on (5 calibration images) would give 80% power; with k-fold CV,
    cross-conformal screening calibrates on every annotated image"."""
    need = calibration_images_needed(n_calibration, n_batch, level, power)
    if need is None:
        return (f"with {n_batch} new image(s) no calibration set (up to 200 images) gives {100 * power:.0f}% power: "
                "screen more new images together")
    return (f"{need - n_calibration} more annotated image(s) not trained on ({need} calibration images) would give "
            f"{100 * power:.0f}% power; with k-fold CV, cross-conformal screening calibrates on every annotated image")
