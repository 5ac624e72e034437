"""Recommend encoder x decoder pairs for a dataset from its context (docs/compare.md, "Recommendation").

Evidence rows are (dataset, encoder, decoder, IoU) from (a) local sweeps and (b) the paper's Table 3
(package data). Each evidence dataset gets a similarity ``w = exp(-d^2)`` to the query, where ``d^2`` sums
over the context features :data:`FEATURES` (difficulty in levels; modality, volume, low contrast, heavy
imbalance, fine features as 0/1 mismatches; 0.25 when either side is unknown). A pair's score is the
similarity-weighted mean of its IoU relative to the best IoU on the same dataset, shrunk towards 0.5 with
a pseudo-weight :data:`KAPPA` so that pairs seen only on dissimilar data do not rank high.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from matseg_nb.compare.descriptors import (
    DIFFICULTY_LEVELS,
    Descriptors,
    compute_descriptors,
    estimate_difficulty,
)

FEATURES = ("difficulty", "modality", "volume", "low_contrast", "heavy_imbalance", "fine_features")
UNKNOWN_D2 = 0.25
KAPPA = 0.1
PAPER_DECODERS = {"unet": "Unet", "deeplabv3": "DeepLabV3", "deeplabv3plus": "DeepLabV3Plus"}
PAPER_FINDINGS = {
    ("Unet", "low"): "paper: UNet dominates high-contrast 2-D tasks (Easy/Moderate)",
    ("DeepLabV3Plus", "high"): "paper: DeepLabv3+ is preferred for the hardest cases (fractography, XCT stress "
                               "corrosion), where multi-scale context matters",
}


@dataclass
class Candidate:
    """One ranked encoder x decoder pair."""

    encoder: str
    decoder: str
    score: float
    support: float
    n_datasets: int
    reasons: list[str] = field(default_factory=list)

    @property
    def arch(self) -> str:
        return f"{self.encoder}+{self.decoder}"


@dataclass
class Recommendation:
    """Ranked pairs with reasons, confidence and the evidence rows used (``evidence``: list of dicts)."""

    dataset: str
    descriptors: dict
    difficulty: str
    difficulty_source: str
    difficulty_reasons: list[str]
    ranked: list[Candidate]
    confidence: str
    confidence_reason: str
    evidence: list[dict]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        for c, d in zip(self.ranked, out["ranked"], strict=True):
            d["arch"] = c.arch
        return _json_safe(out)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (atomically); the report reads ``<compare>/recommendation.json``."""
        from matseg_nb.atomic import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    def to_text(self) -> str:
        lines = [f"Recommendation for {self.dataset}: difficulty {self.difficulty} ({self.difficulty_source}; "
                 + "; ".join(self.difficulty_reasons) + ")",
                 f"confidence: {self.confidence} -- {self.confidence_reason}"]
        for i, c in enumerate(self.ranked, start=1):
            lines.append(f"{i}. {c.arch}  score {c.score:.3f} (evidence weight {c.support:.2f}, "
                         f"{c.n_datasets} datasets)")
            lines += [f"     - {r}" for r in c.reasons]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _json_safe(obj):
    """NaN -> None, numpy scalars -> Python, tuples -> lists (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _flag(value) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return bool(int(value))


def slug(name: str) -> str:
    """'Al-Mg-Si SC' -> 'al-mg-si-sc' (how the paper's datasets are named as manifests)."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


#: evidence weight of a Table 3 row whose Dice < IoU (see :func:`paper_evidence`)
INCONSISTENT_WEIGHT = 0.25


def paper_evidence() -> pd.DataFrame:
    """Table 3 rows with context features: dataset, modality, difficulty, encoder, decoder, iou, ... ."""
    pkg = resources.files("matseg_nb") / "resources"
    with resources.as_file(pkg / "paper_table3.csv") as p:
        table = pd.read_csv(p)
    with resources.as_file(pkg / "paper_table3.context.csv") as p:
        ctx = pd.read_csv(p, keep_default_na=True)
    table = table.merge(ctx.drop(columns=["basis"]), on="dataset", how="left")
    table["decoder"] = table["decoder"].map(lambda d: PAPER_DECODERS.get(str(d).lower(), d))
    table["source"] = "paper Table 3"
    # Dice >= IoU for every consistent average of one model's scores; Dice < IoU means the row is internally
    # inconsistent (e.g. averaged differently, or a transcription error), so it counts a quarter
    bad = table["dice"].notna() & table["iou"].notna() & (table["dice"] < table["iou"])
    table["reliability"] = np.where(bad, INCONSISTENT_WEIGHT, 1.0)
    table["flag"] = np.where(bad, "inconsistent: Dice < IoU (impossible for consistent averaging); "
                             f"down-weighted x{INCONSISTENT_WEIGHT}", "")
    table["n_runs"] = 1  # Table 3 reports one training run per cell
    return table


def context_of(desc: Descriptors, difficulty: str) -> dict:
    """The :data:`FEATURES` of a dataset from its descriptors (None = unknown)."""
    return {"difficulty": DIFFICULTY_LEVELS.index(difficulty), "modality": desc.modality,
            "volume": desc.is_volume, "low_contrast": desc.low_contrast,
            "heavy_imbalance": desc.heavy_imbalance, "fine_features": desc.fine_features}


def _paper_context(row: pd.Series) -> dict:
    diff = {"V. Hard": "Very Hard"}.get(row["difficulty"], row["difficulty"])
    return {"difficulty": DIFFICULTY_LEVELS.index(diff), "modality": row["modality"],
            "volume": _flag(row["volume"]), "low_contrast": _flag(row["low_contrast"]),
            "heavy_imbalance": _flag(row["heavy_imbalance"]), "fine_features": _flag(row["fine_features"])}


def similarity(query: dict, other: dict) -> tuple[float, list[str]]:
    """``exp(-d^2)`` and the features that match (for the reasons)."""
    d2, matches = 0.0, []
    for f in FEATURES:
        a, b = query.get(f), other.get(f)
        if a is None or b is None:
            d2 += UNKNOWN_D2
            continue
        diff = float(abs(a - b)) if f == "difficulty" else float(a != b)
        d2 += diff**2
        if diff == 0:
            matches.append(f"same {f.replace('_', ' ')}" if f in ("difficulty", "modality") else
                           f"{'both' if a else 'neither'} {f.replace('_', ' ')}")
    return math.exp(-d2), matches


def _difficulty(desc: Descriptors) -> tuple[str, str, list[str]]:
    level, reasons = estimate_difficulty(desc)
    if desc.declared_difficulty:
        agree = desc.declared_difficulty == level or not desc.n_images_used
        extra = [] if agree else [f"descriptors alone suggest {level}"]
        return desc.declared_difficulty, "declared in the manifest", reasons + extra
    return level, "estimated from descriptors", reasons


def _local_evidence(sweep_dirs, query_name: str, cache: dict[str, tuple[Descriptors, str]],
                    notes: list[str]) -> pd.DataFrame:
    from matseg_nb.compare.aggregate import cell_table
    from matseg_nb.compare.runs import load_runs

    cells = cell_table(load_runs(list(sweep_dirs)))
    cells = cells[cells["n_seeds"] > 0]
    rows = []
    for ds, grp in cells.groupby("dataset", sort=True):
        if grp[["encoder", "decoder"]].drop_duplicates().shape[0] < 2:
            notes.append(f"local dataset {ds}: only one complete pair, no ranking information; not used")
            continue
        if ds not in cache:
            try:
                d = compute_descriptors(ds, max_images=4)
                cache[ds] = (d, _difficulty(d)[0])
            except Exception as err:  # noqa: BLE001 - unreadable evidence data must not stop a recommendation
                notes.append(f"local dataset {ds}: descriptors unavailable ({str(err).splitlines()[0]}); "
                             "its context counts as unknown")
                cache[ds] = (Descriptors(name=str(ds)), "")
        d, level = cache[ds]
        ctx = context_of(d, level) if level else dict.fromkeys(FEATURES)
        for _, r in grp.iterrows():
            # CV over all images has no test split: its evidence is the out-of-fold IoU over all images
            oof = pd.isna(r["iou"]) and pd.notna(r.get("oof_iou_img"))
            if pd.isna(r["iou"]) and not oof:
                continue
            rows.append({"source": f"local sweep ({r['runs'] if oof else r['n_seeds']} "
                                   f"{'runs, out-of-fold' if oof else 'seed(s)'})", "dataset": ds,
                         "modality": d.modality, "difficulty": level or None, "encoder": r["encoder"],
                         "decoder": r["decoder"], "encoder_weights": r["encoder_weights"],
                         "iou": r["oof_iou_img"] if oof else r["iou"],
                         "n_runs": int(r["n_seeds"]), "reliability": 1.0, "flag": "", "_ctx": ctx, "_same": ds == query_name or d.name == query_name})
    return pd.DataFrame(rows)


def _weights(evidence: pd.DataFrame, query: dict) -> pd.DataFrame:
    sims, matches = [], []
    for _, r in evidence.iterrows():
        if r.get("_same", False):
            s, m = 1.0, ["the same dataset"]
        else:
            s, m = similarity(query, r["_ctx"])
        sims.append(s)
        matches.append(m)
    rel = evidence["reliability"].fillna(1.0) if "reliability" in evidence else 1.0
    evidence = evidence.assign(similarity=np.asarray(sims) * rel, matches=matches)
    best = evidence.groupby(["source", "dataset"])["iou"].transform("max")
    evidence["rel_iou"] = evidence["iou"] / best
    evidence["rank_in_dataset"] = evidence.groupby(["source", "dataset"])["iou"].rank(ascending=False, method="min")
    evidence["n_in_dataset"] = evidence.groupby(["source", "dataset"])["iou"].transform("size")
    return evidence


def _reasons(cand: pd.DataFrame, evidence: pd.DataFrame, decoder: str, difficulty: str) -> list[str]:
    out = []
    for _, r in cand.sort_values("similarity", ascending=False).head(2).iterrows():
        why = ", ".join(r["matches"]) or "few shared context features"
        out.append(f"{r['dataset']} ({r['source']}, similarity {r['similarity']:.2f}: {why}): IoU {r['iou']:.3f} "
                   f"= {100 * r['rel_iou']:.0f}% of that dataset's best (rank {int(r['rank_in_dataset'])}/"
                   f"{int(r['n_in_dataset'])})")
    top = (evidence.groupby(["source", "dataset"])["similarity"].first().sort_values(ascending=False).head(3))
    wins = 0
    for key in top.index:
        rows = evidence.set_index(["source", "dataset"]).loc[[key]]
        wins += int(rows.sort_values("iou", ascending=False)["decoder"].iloc[0] == decoder)
    out.append(f"{decoder} is the best decoder on {wins} of the {len(top)} most similar evidence datasets")
    band = "low" if DIFFICULTY_LEVELS.index(difficulty) <= 1 else "high"
    if (decoder, band) in PAPER_FINDINGS:
        out.append(PAPER_FINDINGS[(decoder, band)])
    return out


def _confidence(ranked: list[Candidate], evidence: pd.DataFrame) -> tuple[str, str]:
    if not ranked:
        return "low", "no evidence rows"
    top = ranked[0]
    rows = evidence[(evidence["encoder"] == top.encoder) & (evidence["decoder"] == top.decoder)]
    w = rows["similarity"].to_numpy()
    top_sim = float(w.max()) if w.size else 0.0
    n_eff = float(w.sum() ** 2 / (w**2).sum()) if w.size and (w**2).sum() > 0 else 0.0
    margin = top.score - ranked[1].score if len(ranked) > 1 else math.inf
    runs = rows["n_runs"].fillna(1) if "n_runs" in rows else pd.Series([1] * len(rows))
    single = bool(len(rows)) and bool((runs <= 1).all())
    why = (f"most similar evidence dataset has similarity {top_sim:.2f}, effective number of evidence datasets "
           f"{n_eff:.1f}, score margin over #2 {margin:.3f}"
           + ("; every piece of evidence is a single training run, so at most medium" if single else ""))
    if top_sim >= 0.5 and n_eff >= 2 and margin >= 0.03 and not single:
        return "high", why
    if top_sim < 0.2 or margin < 0.005:
        return "low", why
    return "medium", why


def recommend(dataset_ref_or_dir, sweep_dirs=(), top: int = 6, use_paper: bool = True,
              descriptors: Descriptors | None = None) -> Recommendation:
    """Rank encoder x decoder pairs for a dataset (manifest name/path, images/+masks/ folder or a folder
    of images) from local sweep results on similar datasets and the paper's Table 3."""
    desc = descriptors or compute_descriptors(dataset_ref_or_dir)
    difficulty, source, diff_reasons = _difficulty(desc)
    query = context_of(desc, difficulty)
    notes = list(desc.notes)
    frames = []
    if sweep_dirs:
        local = _local_evidence(sweep_dirs, desc.name, {}, notes)
        if len(local):
            frames.append(local)
    if use_paper:
        paper = paper_evidence()
        paper["_ctx"] = [_paper_context(r) for _, r in paper.iterrows()]
        paper["_same"] = paper["dataset"].map(slug) == slug(desc.name)
        frames.append(paper)
    if not frames:
        return Recommendation(desc.name, desc.to_dict(), difficulty, source, diff_reasons, [], "low",
                              "no evidence", [], notes)
    evidence = _weights(pd.concat(frames, ignore_index=True), query)
    cands = []
    for (enc, dec), grp in evidence.groupby(["encoder", "decoder"], sort=True):
        w, r = grp["similarity"].to_numpy(), grp["rel_iou"].to_numpy()
        score = float((np.sum(w * r) + KAPPA * 0.5) / (np.sum(w) + KAPPA))
        cands.append(Candidate(enc, dec, score, float(w.sum()), grp["dataset"].nunique()))
    cands.sort(key=lambda c: (-c.score, c.arch))
    ranked = cands[:top]
    for c in ranked:
        grp = evidence[(evidence["encoder"] == c.encoder) & (evidence["decoder"] == c.decoder)]
        c.reasons = [f"score = similarity-weighted mean IoU relative to each dataset's best, over "
                     f"{c.n_datasets} datasets"] + _reasons(grp, evidence, c.decoder, difficulty)
    confidence, why = _confidence(cands, evidence)
    n_bad = int((evidence.get("flag", pd.Series(dtype=str)).fillna("") != "").sum())
    if n_bad:
        notes.append(f"{n_bad} paper Table 3 rows have Dice < IoU (internally inconsistent) and count "
                     f"x{INCONSISTENT_WEIGHT}")
    if ranked:
        grp = evidence[(evidence["encoder"] == ranked[0].encoder) & (evidence["decoder"] == ranked[0].decoder)]
        n_local = int((grp["source"] != "paper Table 3").sum())
        n_single = int((grp["n_runs"].fillna(1) <= 1).sum()) if "n_runs" in grp else len(grp)
        notes.insert(0, f"rests on: {len(grp)} results ({n_single} single-run) of {ranked[0].arch} on "
                        f"{grp['dataset'].nunique()} datasets ({n_local} from local sweeps), weighted by "
                        f"similarity to this dataset's train+val descriptors (effective weight {ranked[0].support:.2f})")
    used = evidence[evidence["similarity"] >= 0.05].sort_values(["similarity", "iou"], ascending=False)
    cols = ["source", "dataset", "modality", "difficulty", "encoder", "decoder", "iou", "rel_iou", "similarity",
            "flag"]
    used = used.assign(flag=used["flag"].fillna("") if "flag" in used else "")
    return Recommendation(desc.name, desc.to_dict(), difficulty, source, diff_reasons, ranked, confidence, why,
                          used[cols].to_dict("records"), notes)


