"""``explain_image``: heatmap + faithfulness + figure for one image of a trained run."""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json
from matseg_nb.errors import UserError
from matseg_nb.explain.annotation import load_annotation, load_annotation_meta
from matseg_nb.explain.faithfulness import (
    DEFAULT_FRACTIONS,
    DEFAULT_RING_PERMUTATIONS,
    FaithfulnessResult,
    faithfulness,
    forward_passes,
)
from matseg_nb.explain.figures import explanation_figure
from matseg_nb.explain.forward import prediction_fn
from matseg_nb.explain.heatmap import heatmap
from matseg_nb.explain.randomisation import (
    DEFAULT_LOCATIONS,
    build_twin,
    cascade_steps,
    model_randomisation,
)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _png_bytes(fig) -> bytes:
    from matseg_nb.figures import figure_png

    return figure_png(fig, dpi=110, close=False)


def _heat_png(hmap: np.ndarray) -> bytes:
    from PIL import Image

    hi = float(hmap.max()) if hmap.size and hmap.max() > 0 else 1.0
    return _bytes_of(Image.fromarray((255 * np.clip(hmap / hi, 0, 1)).astype(np.uint8)))


def _bytes_of(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def load_model_input(image_path: str | Path, meta: dict) -> np.ndarray:
    """Read ``image_path`` as (C, H, W) float32 normalized like the run's training data."""
    from matseg_nb.data import normalize_image, read_image

    norm = meta.get("normalization") or "percentile"
    mode = norm.get("mode", "percentile") if isinstance(norm, dict) else str(norm)
    img = normalize_image(read_image(image_path), mode=mode)
    want = meta.get("in_channels")
    if want and img.shape[0] != int(want):
        if img.shape[0] == 1:
            img = np.repeat(img, int(want), axis=0)
        else:
            raise UserError(f"{image_path}: expected {want} channel(s) like the run's data, found {img.shape[0]}")
    return img


#: (window, stride) px pairs a time budget chooses from, finest first (``choose_grid``)
GRID_CANDIDATES: tuple[tuple[int, int], ...] = ((32, 16), (32, 32), (64, 32), (64, 64), (128, 128))


@dataclass(frozen=True)
class RandomisationLoad:
    """The model-randomisation check's work, for :func:`choose_grid`: ``steps`` cascade steps, each a heatmap
    of up to ``max_locations`` grid locations whose window touches A on a re-initialised copy of the model,
    whose set-up (copy + probability function) took ``twin_seconds`` s (measured:
    :func:`~matseg_nb.explain.randomisation.build_twin`)."""

    steps: int
    max_locations: int
    twin_seconds: float = 0.0

    def locations(self, mask: np.ndarray, window: int, stride: int, region=None) -> int:
        """Locations each step computes at this grid: those whose window touches A (and ``region``), capped."""
        from matseg_nb.explain.grid import region_grid_mask

        on_a = region_grid_mask(np.asarray(mask) > 0, window, stride)
        if region is not None:
            on_a &= region_grid_mask(np.asarray(region) > 0, window, stride)
        return min(int(self.max_locations), int(on_a.sum()))

    def estimate_s(self, n_locations: int, seconds_per_location: float, setup_s: float) -> float:
        """Seconds of the whole check: per step, the copy, the heatmap's set-up and its locations."""
        return self.steps * (self.twin_seconds + setup_s + n_locations * seconds_per_location)


def time_forward(fn, image: np.ndarray, batch: int, crop=None) -> float:
    """Seconds per image of ``fn`` on ``batch`` copies of ``image`` (C, H, W) (``crop``: its box only), the
    faster of two passes (the first also pays one-off set-up)."""
    import torch

    x = torch.as_tensor(np.asarray(image, np.float32))[None].repeat(int(batch), 1, 1, 1)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        fn(x, crop=crop) if crop is not None else fn(x)
        times.append(time.perf_counter() - t)
    return min(times) / int(batch)


def choose_grid(fn, image: np.ndarray, mask: np.ndarray, budget_s: float, n_faith_passes: int,
                candidates=GRID_CANDIDATES, kernel: str = "blur", kernel_params: dict | None = None,
                region=None, max_batch: int | None = None, log=print,
                randomisation: RandomisationLoad | None = None, started: float | None = None) -> tuple[int, int, dict]:
    """The finest (window, stride) of ``candidates`` whose heatmap fits ``budget_s`` seconds on this machine
    together with everything else the explain stage runs: the faithfulness test (``n_faith_passes``
    whole-image forward passes) and the model-randomisation check (``randomisation``; None: not run), after
    what the stage has already spent (since ``started``, a ``time.perf_counter()`` value; default: this
    call's start), this choice's own probes included.

    Measured, not guessed: the faithfulness passes are timed as they run (batches of
    :func:`~matseg_nb.explain.faithfulness.deletion_batch` images, A's box only); for each candidate
    (finest first) a heatmap of up to 4 evenly spread locations gives its set-up and seconds per location,
    which also price the randomisation check's heatmaps (same model shape, same grid). The first candidate
    whose time spent + heatmap + faithfulness + randomisation fit the budget is taken (the coarsest when none
    does; the caller then caps the heatmap with ``max_minutes``). Returns (window, stride, plan) with the
    estimates in seconds: ``heatmap_budget_s`` is what the budget leaves the heatmap."""
    import torch

    from matseg_nb.explain.boxes import mask_box
    from matseg_nb.explain.faithfulness import deletion_batch
    from matseg_nb.explain.grid import grid_locations

    started = time.perf_counter() if started is None else float(started)
    h, w = image.shape[-2:]
    faith_batch = int(max_batch) if max_batch else deletion_batch(fn, (h, w))
    box = mask_box(torch.as_tensor(np.asarray(mask) > 0))
    forward_s = time_forward(fn, image, faith_batch, crop=box)
    faith_s = n_faith_passes * forward_s
    tried = []
    usable = [(win, st) for win, st in candidates if win <= min(h, w)] or [(min(h, w), min(h, w))]
    for win, st in usable:
        ys, xs = grid_locations((h, w), win, st)
        n = len(ys) * len(xs)
        pick = np.linspace(0, n - 1, num=min(4, n)).round().astype(int)
        locs = [(int(k) // len(xs), int(k) % len(xs)) for k in pick]
        res = heatmap(fn, image, mask, kernel=kernel, window=win, stride=st, kernel_params=kernel_params,
                      region=region, locations=locs, max_batch=max_batch)
        setup = float(res.extra["setup_seconds"])
        per = max(res.seconds - setup, 1e-6) / max(1, int(res.valid.sum()))
        n_run = int(region_count(region, (h, w), win, st)) if region is not None else n
        est = setup + n_run * per
        n_rand = randomisation.locations(mask, win, st, region) if randomisation else 0
        rand = randomisation.estimate_s(n_rand, per, setup) if randomisation else 0.0
        total = est + faith_s + rand
        spent = time.perf_counter() - started
        tried.append({"window": win, "stride": st, "locations": n_run, "seconds_per_location": round(per, 4),
                      "setup_s": round(setup, 3), "heatmap_estimate_s": round(est, 1),
                      "randomisation_locations": n_rand, "randomisation_estimate_s": round(rand, 1),
                      "total_estimate_s": round(total, 1), "spent_s": round(spent, 1)})
        fits = spent + total <= float(budget_s)
        if fits:
            break
    chosen = tried[-1]
    rand_s = chosen["randomisation_estimate_s"]
    heat_budget = max(float(budget_s) - chosen["spent_s"] - faith_s - rand_s, 0.25 * float(budget_s))
    plan = {"budget_s": float(budget_s), "forward_s": round(forward_s, 4), "faithfulness_batch": faith_batch,
            "faithfulness_passes": int(n_faith_passes), "faithfulness_estimate_s": round(faith_s, 1),
            "randomisation": None if randomisation is None else asdict(randomisation),
            "randomisation_estimate_s": rand_s, "heatmap_budget_s": round(heat_budget, 1),
            "spent_s": chosen["spent_s"], "total_estimate_s": chosen["total_estimate_s"], "fits": bool(fits),
            "tried": tried}
    if log:
        rand_text = (f"; model randomisation about {rand_s:.0f} s = {randomisation.steps} x "
                     f"{chosen['randomisation_locations']} locations" if randomisation else "")
        log(f"grid for a {budget_s / 60:g}-min budget: window {chosen['window']} px, stride {chosen['stride']} px "
            f"({chosen['locations']} locations, about {chosen['heatmap_estimate_s']:.0f} s; faithfulness about "
            f"{faith_s:.0f} s = {n_faith_passes} passes of {forward_s:.2f} s{rand_text}; with the "
            f"{chosen['spent_s']:.0f} s spent choosing, about {chosen['spent_s'] + chosen['total_estimate_s']:.0f} s)")
    return chosen["window"], chosen["stride"], plan


def region_count(region, shape, window: int, stride: int) -> int:
    """Number of grid locations whose window touches ``region`` (H, W)."""
    from matseg_nb.explain.grid import region_grid_mask

    return int(region_grid_mask(np.asarray(region) > 0, window, stride).sum())


def dataset_note(image_path, meta: dict) -> str:
    """A note when ``image_path`` is not an image of the run's dataset (``meta["dataset"]``), "" otherwise or
    when the dataset cannot be opened here. The explanation still runs: it then shows how the model reacts
    to an image it was not trained on, which ``matseg qc RUN --new IMAGE`` can screen first."""
    ref = meta.get("dataset")
    if not ref or image_path is None:
        return ""
    try:
        from matseg_nb.data import open_dataset

        ds = open_dataset(ref)
        files = {Path(s.image).resolve() for split in ("train", "val", "test") for s in ds.samples(split)}
    except Exception:  # noqa: BLE001 - the dataset may live elsewhere; no note rather than a wrong one
        return ""
    if Path(image_path).resolve() in files:
        return ""
    return (f"{Path(image_path).name} is not an image of the run's dataset {ds.name}: H shows how the model "
            f"reacts to an image it was not trained on (screen it first with matseg qc RUN --new IMAGE)")


@dataclass
class ExplanationResult:
    """One explanation: where it came from, the heatmap's settings/timing (``heatmap``:
    :meth:`HeatmapResult.meta`), the faithfulness test, notes on the input and the files written
    (``outputs``: name -> file name under the output folder)."""

    run_dir: str
    image: str
    mask: str
    mask_source: str
    mask_meta: dict
    heatmap: dict
    faithfulness: FaithfulnessResult
    outputs: dict
    region_dilation: int | None = None
    notes: list[str] = field(default_factory=list)
    grid_plan: dict | None = None  # how a time budget chose window/stride (``choose_grid``), else None

    @property
    def partial(self) -> bool:
        return bool(self.heatmap.get("partial"))

    def heatmap_sentence(self) -> str:
        """The heatmap's size and time."""
        h = self.heatmap
        return (f"Heatmap of {Path(self.image).name} with A = {self.mask_source}: {h['n_locations']} locations "
                f"(window {h['window']} px, stride {h['stride']} px, {h['kernel']}, "
                f"{'AMP' if h.get('amp') else 'float32'}) in {h['seconds']:.1f} s"
                + (" - PARTIAL, stopped by max_minutes" if self.partial else "") + ".")

    def summary_parts(self) -> list[str]:
        """The heatmap sentence, the faithfulness sentences (:meth:`FaithfulnessResult.sentences`), notes."""
        notes = ["Notes: " + "; ".join(self.notes) + "."] if self.notes else []
        return [self.heatmap_sentence(), *self.faithfulness.sentences(), *notes]

    def summary(self) -> str:
        """:meth:`summary_parts` as one paragraph."""
        return " ".join(self.summary_parts())

    def summary_lines(self, width: int = 100) -> list[str]:
        """:meth:`summary_parts` for a terminal, each wrapped at ``width`` columns (``terminal.fit_lines``)."""
        from matseg_nb.terminal import fit_lines

        return fit_lines(self.summary_parts(), width).split("\n")

    def to_json(self) -> dict:
        d = asdict(self)
        d["faithfulness"] = self.faithfulness.to_json()
        d["summary"] = self.summary()
        return d

    @classmethod
    def from_json(cls, data: dict) -> ExplanationResult:
        d = {k: v for k, v in data.items() if k != "summary"}
        d["faithfulness"] = FaithfulnessResult.from_json(d["faithfulness"])
        return cls(**d)


def explain_image(run_dir, image_path, mask_png, out_dir, kernel: str = "blur", window: int | None = 16,
                  stride: int | None = 4, kernel_params: dict | None = None, region_dilation: int | None = None,
                  device: str = "cpu", max_batch: int | None = None, fractions=DEFAULT_FRACTIONS,
                  n_draws: int = 20, level: float = 0.05, amp: bool = False, max_minutes: float | None = None,
                  n_perm: int = DEFAULT_RING_PERMUTATIONS, randomisation_locations: int = DEFAULT_LOCATIONS,
                  progress: bool = True, log=print, mask_source: str | None = None,
                  model=None, image: np.ndarray | None = None, meta: dict | None = None,
                  budget_minutes: float | None = None, grid_candidates=GRID_CANDIDATES) -> ExplanationResult:
    """Write ``heatmap.npy`` (H, W), ``heatmap_grid.npy``, ``heatmap.png``, ``faithfulness.json``,
    ``explanation.png`` and ``explain.json`` under ``out_dir``; returns :class:`ExplanationResult`.

    ``region_dilation`` (px) restricts locations to a dilation of A; ``fractions`` / ``n_draws`` /
    ``n_perm`` / ``level``: the faithfulness test (:func:`faithfulness`, shuffling H's stride cells within
    rings of distance to A); ``randomisation_locations``: locations of the model-randomisation check
    (:func:`~matseg_nb.explain.randomisation.model_randomisation`, 0 skips it); ``amp``: autocast instead of float32;
    ``max_minutes``: stop the heatmap early (partial map, marked so); ``log``: progress lines
    (``None``: silent). ``model``/``image``/``meta`` skip loading from the run folder.
    ``budget_minutes`` with ``window``/``stride`` None: :func:`choose_grid` picks them from
    ``grid_candidates`` so that heatmap + faithfulness + model randomisation fit the budget on this machine, and the heatmap is
    capped at its share (partial, marked so, if the estimate was short); the plan is in ``grid_plan``.
    """
    started = time.perf_counter()  # the budget counts the stage from here
    out = Path(out_dir)
    if model is None:
        from matseg_nb.models import load_run_model

        model, meta = load_run_model(run_dir, device=device)
    meta = meta or {}
    img = image if image is not None else load_model_input(image_path, meta)
    notes: list[str] = []
    a = load_annotation(mask_png, img.shape, notes, check_extent=True)
    mask_meta = load_annotation_meta(mask_png)
    if mask_source is None:
        mask_source = ("ground-truth class boundaries, not an expert drawing"
                       if mask_meta.get("tool") == "gt-boundary" else f"mask {Path(str(mask_png)).name}")
    if image is None and (other := dataset_note(image_path, meta)):
        notes.append(other)
    region = None
    if region_dilation:
        from scipy import ndimage

        region = ndimage.binary_dilation(a, iterations=int(region_dilation))
    fn, path_note = prediction_fn(model, tuple(img.shape[-2:]), meta, device=device, amp=amp)
    shape = tuple(img.shape[-2:])

    def make_twin_fn(m):
        return prediction_fn(m, shape, meta, device=device, amp=amp)[0]

    if path_note:
        notes.append(path_note)
    plan = None
    prebuilt: dict = {}  # cascade steps' probability functions built while choosing the grid
    if window is None or stride is None:
        if budget_minutes is None:
            raise UserError("window/stride: expected both in px, or budget_minutes to choose them, found neither")
        n_passes = forward_passes(len(set(fractions)), n_draws, n_perm)
        load = None
        if randomisation_locations and (steps := cascade_steps(model)):
            first, seconds = build_twin(model, steps[0][1], make_twin_fn)  # timed, and used by the check
            prebuilt[tuple(steps[0][1])] = first
            load = RandomisationLoad(len(steps), int(randomisation_locations), round(seconds, 3))
        window, stride, plan = choose_grid(fn, img, a, 60.0 * float(budget_minutes), n_passes, grid_candidates,
                                           kernel, kernel_params, region, max_batch, log, randomisation=load,
                                           started=started)
        cap = 1.25 * plan["heatmap_budget_s"] / 60.0
        max_minutes = cap if max_minutes is None else min(float(max_minutes), cap)
        notes.append(f"window {window} px / stride {stride} px chosen to fit the {budget_minutes:g}-min budget")
    res = heatmap(fn, img, a, kernel=kernel, window=window, stride=stride, region=region,
                  kernel_params=kernel_params, max_batch=max_batch, progress=progress, log=log,
                  max_minutes=max_minutes)
    exact = fn if not fn.amp else prediction_fn(model, tuple(img.shape[-2:]), meta, device=device)[0]
    if log:  # --max-minutes bounds the heatmap only: say what the test will cost before it starts
        n_passes = forward_passes(len(set(fractions)), n_draws, n_perm)
        fwd = plan["forward_s"] if plan else res.extra["setup_seconds"] / (2 if res.extra.get("incremental") else 1)
        log(f"faithfulness: {n_passes} whole-image forward passes, about {n_passes * fwd:.0f} s "
            f"({fwd:.2f} s per pass)")
    faith = faithfulness(exact, img, a, res.map, window=window, heatmap_kernel=kernel, fractions=fractions,
                         n_draws=n_draws, level=level, max_batch=max_batch, progress=progress, cell=stride,
                         n_perm=n_perm)
    if randomisation_locations:
        if log:
            log(f"model randomisation: H on up to {randomisation_locations} locations on A for each of "
                f"{len(cascade_steps(model))} re-initialised copies of the model")
        faith.randomisation = model_randomisation(
            model, img, a, res.grid, res.valid, window, stride, kernel, kernel_params, make_fn=make_twin_fn,
            max_locations=randomisation_locations, max_batch=max_batch, prebuilt=prebuilt)
    prebuilt.clear()
    if res.partial:
        faith.notes.append("the heatmap is partial (max_minutes), so this tests only the locations done")
    import torch

    with torch.inference_mode():
        pred = exact(torch.as_tensor(np.asarray(img, np.float32))[None])[0].argmax(0).cpu().numpy()
    atomic_write_bytes(out / "heatmap.npy", _npy_bytes(res.map))
    atomic_write_bytes(out / "heatmap_grid.npy", _npy_bytes(res.grid))
    atomic_write_bytes(out / "heatmap.png", _heat_png(res.map))
    atomic_write_json(out / "faithfulness.json", faith.to_json())
    import matplotlib.pyplot as plt

    fig = explanation_figure(img, a, res.map, faith, prediction=pred, mask_label=f"A: {mask_source}",
                             title=f"{Path(str(image_path)).name}: {kernel}, window {window} px, stride {stride} px"
                             + (" (PARTIAL)" if res.partial else ""))
    from matseg_nb.data.formats import file_pixel_size_um
    from matseg_nb.figures import add_scale_bar

    add_scale_bar(fig.axes[0], (meta or {}).get("pixel_size_um") or file_pixel_size_um(image_path))  # image panel
    atomic_write_bytes(out / "explanation.png", _png_bytes(fig))
    plt.close(fig)
    result = ExplanationResult(
        run_dir=str(run_dir), image=str(image_path), mask=str(mask_png), mask_source=mask_source,
        mask_meta=mask_meta, heatmap=res.meta(), faithfulness=faith, region_dilation=region_dilation,
        notes=notes, grid_plan=plan, outputs={"heatmap_npy": "heatmap.npy", "heatmap_grid_npy": "heatmap_grid.npy",
                              "heatmap_png": "heatmap.png", "faithfulness": "faithfulness.json",
                              "figure": "explanation.png"})
    atomic_write_json(out / "explain.json", result.to_json())
    return result


def explain_with_gt_boundary(run_dir, out_dir, split: str = "test", index: int = 0, width: int = 3,
                             **kwargs) -> ExplanationResult:
    """Whole-image route: A = class boundaries of the ground truth of image ``index`` of ``split`` of the
    run's dataset (``job.json`` ``dataset``), saved as ``A_gt_boundary.png`` (tool ``gt-boundary``),
    then :func:`explain_image` on the whole image at full resolution with ``kwargs``; the result's
    ``mask_source`` says that A came from the ground truth."""

    from matseg_nb.data import open_dataset
    from matseg_nb.explain.annotation import save_boundary_annotation
    from matseg_nb.runs import JOB_FILE, Run

    run = Run(Path(run_dir))
    dataset = run.job().get("dataset") if (run.path / JOB_FILE).is_file() else None
    if not dataset:
        raise UserError(f"{run.path / JOB_FILE}: expected the run's job.json (it names the dataset), found none")
    ds = open_dataset(dataset)
    samples = [s for s in ds.samples(split) if s.mask is not None]
    if not 0 <= index < len(samples):
        raise UserError(f"index: expected 0..{len(samples) - 1} for split {split!r}, found {index}")
    sample = samples[index]
    png = save_boundary_annotation(ds.load_mask(sample), Path(out_dir) / "A_gt_boundary.png", sample.image, width)
    return explain_image(run_dir, sample.image, png, out_dir,
                         mask_source=f"ground-truth class boundaries ({width} px), not an expert drawing", **kwargs)
