"""Human-readable one-screen summaries of a profile and of its job list."""

from __future__ import annotations

import textwrap

from matseg_nb.profiles.jobs import Job
from matseg_nb.profiles.schema import Profile


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _training_line(profile: Profile) -> str:
    t = profile.training
    steps = f" x {t.steps_per_epoch} steps" if t.steps_per_epoch else ""
    stop = f"early stop {t.early_stopping_patience} on {t.monitor}" if t.early_stopping_patience else "no early stop"
    aug = t.augmentations
    augs = [n for n in ("hflip", "vflip", "rot90") if getattr(aug, n)]
    augs += [f"{n} {getattr(aug, n)}" for n in ("brightness", "contrast", "gaussian_noise") if getattr(aug, n)]
    return (
        f"  batch {t.batch_size}, lr {t.lr:g} ({t.optimizer}, wd {t.weight_decay:g}, {t.scheduler}), "
        f"max {t.max_epochs} epochs{steps}, {stop}, val every {t.val_every}"
        f"{f' on {t.val_crop_size} px centre crops' if t.val_crop_size else ''}\n"
        f"  crop {t.crop_size} px, tile {t.tile_size}/{t.tile_overlap} px, loss {t.loss}, "
        f"normalization {t.normalization}, precision {t.precision}, workers {t.num_workers}\n"
        f"  augmentations: {', '.join(augs) or 'none'}"
    )


def summarize(profile: Profile, jobs: list[Job] | None = None) -> str:
    """Profile summary: datasets with modality/material, the grid and its job count, training, execution."""
    src = f"  ({profile.source})" if profile.source else ""
    task = profile.task
    lines = [
        f"profile {profile.name}{src}",
        textwrap.fill(profile.description, 100, initial_indent="  ", subsequent_indent="  "),
        textwrap.fill(f"task: {task.objective}", 100, subsequent_indent="  "),
        f"  metrics {', '.join(task.metrics)} (rank by {task.primary_metric}); "
        f"QC {', '.join(task.qc_signals) or 'none'}, ready at AUROC >= {task.readiness_threshold:g}",
        f"datasets ({len(profile.dataset)}):",
    ]
    slugs = {job.dataset: (job.dataset_slug, job.dataset_kind) for job in jobs or []}
    for entry in profile.dataset:
        slug, kind = slugs.get(entry.ref, (entry.ref, ""))
        material = f"{entry.material.class_}" + (f": {entry.material.text}" if entry.material.text else "")
        terms = f", {_plural(len(entry.metadata), 'descriptor')}" if entry.metadata else ""
        lines.append(f"  {slug:<20} {entry.modality:<8} {material}{terms}" + (f"  [{kind}]" if kind else ""))
        if entry.training is not None:
            changes = entry.training.model_dump(exclude_unset=True)
            lines.append(f"    training changes: {', '.join(f'{k} {v}' for k, v in changes.items())}")
    m = profile.model
    _refit = " + 1 refit" if profile.evaluation.refit else ""
    n_jobs = len(jobs) if jobs is not None else profile.grid_size()
    lines += [
        f"grid: {_plural(len(profile.dataset), 'dataset')} x {_plural(len(m.encoders), 'encoder')} x "
        f"{_plural(len(m.decoders), 'decoder')} x {_plural(len(profile.seeds), 'seed')}"
        f"{f' x ({profile.evaluation.folds} folds{_refit}; cross-validation over {profile.evaluation.pool} images)' if profile.evaluation.folds else ''}"
        f" = {_plural(n_jobs, 'job')}",
        f"  encoders: {', '.join(m.encoders)} (weights: {m.encoder_weights})",
        f"  decoders: {', '.join(m.decoders)}",
        *[f"    {d} options: {', '.join(f'{k}={v}' for k, v in opts.items())}" for d, opts in m.decoder_options.items()
          if d in m.decoders],
        *[f"  note: {n}" for n in m.notes()],
        f"  seeds:    {', '.join(map(str, profile.seeds))}",
        "training:",
        _training_line(profile),
    ]
    e = profile.execution
    where = f", scheduler {e.scheduler_address}" if e.scheduler_address else ""
    if e.executor == "slurm":
        s = e.slurm
        where += f", slurm partition {s.partition or '-'}, {s.cores} cores, {s.memory}, {s.gpus} GPU, {s.walltime}"
    lines.append(
        f"execution: {e.executor}, devices {e.devices}, {_plural(e.workers, 'worker')} x "
        f"{_plural(e.threads_per_worker, 'thread')}{where}"
    )
    return "\n".join(line for line in lines if line)


def job_table(jobs: list[Job]) -> str:
    """Fixed-width table: index, job id, dataset, encoder, decoder, seed."""
    headers = ("#", "job_id", "dataset", "encoder", "decoder", "seed")
    rows = [(str(i), j.job_id, j.dataset_slug, j.encoder, j.decoder, str(j.seed)) for i, j in enumerate(jobs, 1)]
    widths = [max(len(r[c]) for r in [headers, *rows]) for c in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [headers, *rows])
