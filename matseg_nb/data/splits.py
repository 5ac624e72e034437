"""Seeded group splits: whole groups (a volume, the tiles of one micrograph) go to one split."""

from __future__ import annotations

import re

import numpy as np

from matseg_nb.data.schema import SPLITS, SplitRule

#: default group key of a 2-D image: the stem without a trailing tile/patch/crop index,
#: e.g. ``sampleA_tile03`` and ``sampleA_tile04`` share group ``sampleA``.
DEFAULT_GROUP_PATTERN = r"^(?P<group>.+?)(?:[_-](?:tile|patch|crop)[_-]?\d+)?$"


def group_of(stem: str, pattern: str | None = None) -> str:
    """Group key of an image stem (the whole stem when the pattern does not match)."""
    m = re.match(pattern or DEFAULT_GROUP_PATTERN, stem)
    if not m:
        return stem
    if "group" in m.groupdict():
        return m.group("group") or stem
    return (m.group(1) if m.groups() else m.group(0)) or stem


def assign_splits(groups: list[str], rule: SplitRule) -> dict[str, str]:
    """Map each distinct group to a split.

    Groups are sorted, shuffled with ``rule.seed`` and cut by ``rule.ratios`` counted in groups:
    val and test get floor(ratio x groups), at least one each when there are 3 or more groups;
    train gets the rest (all groups when there are fewer than 3). Deterministic for a given seed
    and group set.
    """
    uniq = sorted(set(groups))
    order = list(np.random.default_rng(rule.seed).permutation(len(uniq)))
    shuffled = [uniq[i] for i in order]
    n = len(shuffled)
    counts = {s: 0 for s in SPLITS}
    for s in ("val", "test"):
        r = rule.ratios.get(s, 0.0)
        counts[s] = int(np.floor(r * n + 1e-9))
        if r > 0 and n >= 3:
            counts[s] = max(counts[s], 1)
    while counts["val"] + counts["test"] >= n and n > 0 and (counts["val"] or counts["test"]):
        key = "val" if counts["val"] >= counts["test"] else "test"
        counts[key] -= 1
    out: dict[str, str] = {}
    cursor = 0
    for s in ("test", "val"):
        for g in shuffled[cursor : cursor + counts[s]]:
            out[g] = s
        cursor += counts[s]
    for g in shuffled[cursor:]:
        out[g] = "train"
    return out


#: recorded in CV job ids (hash) so that a change of the fold rule changes every CV id
FOLD_RULE = "sklearn GroupKFold over sorted train+val groups"

#: which annotated images k-fold CV pools (``evaluation.pool``): ``all`` = every annotated image (no test split:
#: each image is scored once, out of fold); ``train+val`` = the fixed test split stays out and is only scored
CV_POOLS: dict[str, tuple[str, ...]] = {"all": ("train", "val", "test"), "train+val": ("train", "val")}
#: the fold rule of each pool (``train+val`` keeps :data:`FOLD_RULE`, so its job ids are unchanged)
FOLD_RULES = {"all": "sklearn GroupKFold over sorted groups of all annotated images", "train+val": FOLD_RULE}
#: below this many annotated images a new profile cross-validates over all of them (``matseg init``)
SMALL_DATA_IMAGES = 30
#: k of k-fold CV for a small dataset (fewer when it has fewer image groups)
DEFAULT_FOLDS = 5


def cv_pool(samples: list, pool: str = "all") -> list:
    """The annotated samples (``s.mask`` set) that ``pool`` (a :data:`CV_POOLS` key) cross-validates over."""
    if pool not in CV_POOLS:
        raise ValueError(f"expected evaluation.pool one of {sorted(CV_POOLS)}, found {pool!r}")
    return [s for s in samples if s.split in CV_POOLS[pool] and s.mask is not None]


def default_folds(groups: list[str]) -> int | None:
    """k for a small dataset's CV: :data:`DEFAULT_FOLDS`, or fewer with fewer image groups; None (keep the
    fixed split) from :data:`SMALL_DATA_IMAGES` images up, or when fewer than 2 groups exist."""
    if len(groups) >= SMALL_DATA_IMAGES or len(set(groups)) < 2:
        return None
    return min(DEFAULT_FOLDS, len(set(groups)))


def assign_folds(groups: list[str], folds: int) -> dict[str, int]:
    """Map each distinct group to a fold 0..folds-1 with scikit-learn's ``GroupKFold``.

    ``groups``: one group key per image (repeats = images of one sample/spot). Whole groups go to one fold;
    folds are balanced by image count (largest groups first). Deterministic for a given list. Raises
    ValueError for fewer than 2 distinct groups or more folds than groups.
    """
    from sklearn.model_selection import GroupKFold

    keys = sorted(groups)
    n_groups = len(set(keys))
    if n_groups < 2:
        only = f" (group {keys[0]!r} holds all {len(keys)} images)" if keys else ""
        raise ValueError(f"expected at least 2 image groups for cross-validation, found {n_groups}{only}")
    if not 2 <= folds <= n_groups:
        raise ValueError(f"expected 2 to {n_groups} folds (the number of image groups among {len(keys)} "
                         f"images), found {folds}")
    out: dict[str, int] = {}
    for fold, (_, val_idx) in enumerate(GroupKFold(n_splits=folds).split(np.zeros(len(keys)), groups=keys)):
        for i in val_idx:
            out[keys[i]] = fold
    return out
