"""``suggest(run_dir, sources, n, out_dir)``: rank unlabelled images for annotation and write the answer.

Writes ``out_dir/suggestions.csv`` (rank, image, source, score, atypicality, uncertainty, diversity,
mean_entropy_nats, reason), ``out_dir/suggest.json`` (:meth:`SuggestResult.to_json`) and
``out_dir/contact_sheet.png``; every file atomically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from matseg_nb.errors import UserError
from matseg_nb.suggest.ranking import Suggestion, SuggestWeights, percentile_against, rank_candidates

CSV_COLUMNS = ["rank", "image", "source", "score", "atypicality", "uncertainty", "diversity", "mean_entropy_nats",
               "reason"]


@dataclass
class SuggestResult:
    """The ranked list: ``suggestions`` in pick order; ``weights`` the mix; ``n_candidates`` screened."""

    run_dir: str
    dataset: str | None
    weights: dict
    mix: str
    calibration: str
    n_heldout: int
    n_candidates: int
    suggestions: list[Suggestion]
    sources: dict[str, str] = field(default_factory=dict)  # image -> the source argument it came from
    notes: list[str] = field(default_factory=list)
    out_dir: str = ""  # where suggestions.csv, suggest.json and contact_sheet.png are

    def to_json(self) -> dict:
        d = asdict(self)
        d["suggestions"] = [s.to_dict() for s in self.suggestions]
        return d

    @classmethod
    def from_json(cls, data: dict) -> SuggestResult:
        d = dict(data)
        d["suggestions"] = [Suggestion(**s) for s in d.get("suggestions", [])]
        return cls(**d)

    @classmethod
    def load(cls, folder: str | Path) -> SuggestResult:
        """Read ``folder/suggest.json`` (UserError naming the file when absent or not a suggest answer)."""
        from matseg_nb.jsonio import read_json_object

        path = Path(folder) / "suggest.json"
        data = read_json_object(path)
        if data is None:
            raise UserError(f"{path}: expected the suggest.json of `matseg suggest`, found no such file")
        if "suggestions" not in data:
            raise UserError(f"{path}: expected a suggest.json with 'suggestions', found keys {sorted(data)[:5]}")
        return cls.from_json(data)

    def summary(self) -> str:
        """Plain words: what to annotate first and why, then the mix."""
        lines = [f"Annotate next ({len(self.suggestions)} of {self.n_candidates} candidates; mix {self.mix}; "
                 f"signals against {self.n_heldout} {self.calibration} images):"]
        lines += [f"  {s.rank}. {s.image}: {s.reason} (atypicality {s.atypicality:.2f}, uncertainty "
                  f"{s.uncertainty:.2f}, diversity {s.diversity:.2f})" for s in self.suggestions]
        return "\n".join([*lines, *(f"  note: {n}" for n in self.notes)])

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{**s.to_dict(), "source": self.sources.get(s.image, "")} for s in self.suggestions])


def load_candidates(sources: list[str], channels: int, ds=None):
    """(items, {name: source}, notes) of every source; a folder or file list with no image is a UserError."""
    from matseg_nb.qc.screening import load_new_images
    from matseg_nb.qc.sources import IMAGE_EXT

    if not sources:
        raise UserError("suggest UNLABELLED: expected at least one image file, folder or dataset ref, found none")
    items, origin, notes = [], {}, []
    for ref in sources:
        p = Path(ref)
        if not p.exists() and ("/" in ref or p.suffix.lower() in IMAGE_EXT):
            raise UserError(f"suggest {ref}: expected an image file, folder or dataset ref, found no such file")
        if p.is_dir() and not any(f.suffix.lower() in IMAGE_EXT for f in p.rglob("*") if f.is_file()) \
                and not (p / "images").is_dir() and not any(p.glob("*.yaml")):
            raise UserError(f"suggest {ref}: expected image files ({', '.join(sorted(IMAGE_EXT))}), found none")
        got, per_file = load_new_images(ref, channels, ds)
        notes += [f"{name}: {note}" for name, note in per_file.items() if not any(it.name == name for it in got)]
        for it in got:
            if it.name in origin:
                it.name = f"{Path(ref).name}/{it.name}"
            origin[it.name] = ref
        items += got
    if not items:
        raise UserError(f"suggest {' '.join(sources)}: expected readable images, found none ({'; '.join(notes)})")
    return items, origin, notes


def suggest(run_dir: str | Path, sources: list[str], n: int, out_dir: str | Path, weights: SuggestWeights | None = None,
            settings=None, seed: int = 0) -> SuggestResult:
    """Rank the images of ``sources`` (files, folders, dataset refs) for annotation with the run's model; keep
    the ``n`` best (all when ``n`` exceeds the candidates). ``settings``: :class:`matseg_nb.loop.StageSettings`
    (its ``qc`` crops and extractors; default the named stage settings)."""
    from matseg_nb.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
    from matseg_nb.loop import stage_settings
    from matseg_nb.qc.session import QCSession
    from matseg_nb.suggest.sheet import contact_sheet_png
    from matseg_nb.suggest.signals import run_signals

    if n < 1:
        raise UserError(f"--n: expected a positive number of images, found {n}")
    weights = (weights or SuggestWeights()).normalised()
    qc_settings = (settings or stage_settings()).qc
    session = QCSession.open(run_dir)
    channels = session.ds.in_channels
    items, origin, notes = load_candidates(list(sources), channels, session.ds)
    sig = run_signals(session, items, qc_settings, seed=seed)
    picks = rank_candidates(sig.names, 1.0 - sig.typicality, percentile_against(sig.heldout_entropy, sig.mean_entropy),
                            sig.features, sig.labelled_features, sig.mean_entropy, n, weights)
    result = SuggestResult(str(run_dir), session.meta.get("dataset"), asdict(weights), weights.words(),
                           sig.calibration, int(sig.heldout_entropy.size), len(items), picks,
                           {s.image: origin[s.image] for s in picks}, [*sig.notes, *notes], str(out_dir))
    out = Path(out_dir)
    frame = result.to_frame().rename(columns={"mean_entropy": "mean_entropy_nats"})
    atomic_write_text(out / "suggestions.csv", frame.reindex(columns=CSV_COLUMNS).to_csv(index=False))
    atomic_write_json(out / "suggest.json", result.to_json())
    by_name = {it.name: it for it in items}
    titles = [f"#{s.rank} {s.image}\na {s.atypicality:.2f}  u {s.uncertainty:.2f}  d {s.diversity:.2f}" for s in picks]
    atomic_write_bytes(out / "contact_sheet.png", contact_sheet_png([by_name[s.image].image for s in picks], titles))
    return result


def suggest_for_loop(ctx, images: list[str], dataset: str | None = None, n: int = 10) -> SuggestResult | None:
    """:func:`suggest` for a loop (``matseg_nb.pipeline.DemoContext``): the selected model of ``dataset``
    (default: the profile's first dataset) ranks ``images``; writes ``<loop_root>/suggest/<dataset>/``.
    None when ``images`` is empty."""
    from matseg_nb.data import open_dataset
    from matseg_nb.runs import Sweep

    if not images:
        return None
    name = open_dataset(dataset or ctx.profile.dataset[0].ref, base_dir=ctx.profile.base_dir).name
    best = Sweep(ctx.layout.sweep).best_run(name)  # the loop's selected model (``pipeline.best_run``)
    run = None if best is None else best.path
    if run is None:
        raise UserError(f"{ctx.layout.sweep}: expected a complete run for {name} to rank images with, found none")
    return suggest(run, [str(i) for i in images], n, ctx.layout.root / "suggest" / name, settings=ctx.settings)
