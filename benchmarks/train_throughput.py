"""Training throughput of the paper's six encoder x decoder pairs, with and without AMP + channels_last.

GPU (meant for): 512 px random crops of nasa-ebc1, batch 16, one "epoch" = --steps optimiser steps
(after --warmup untimed steps), fp32 vs 16-mixed + channels_last. Reports images/s, peak GPU memory and
the share of step time spent waiting for data. CPU fallback: 64 px, batch 2, 2 steps, fp32 only; the
figures then only show that the script works (it says so in its output).

Usage: python benchmarks/train_throughput.py [--device auto|cuda|cpu] [--pairs resnet50:Unet ...]
Writes benchmarks/results/train_throughput_<device>_<utc time>.json.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from matseg_nb.atomic import atomic_write_json
from matseg_nb.models import PAPER_DECODERS, PAPER_ENCODERS, build_model, n_params
from matseg_nb.training.data import CropDataset, Split, load_split
from matseg_nb.training.module import _losses

RESULTS = Path(__file__).resolve().parent / "results"


def _split(dataset: str, size: int) -> Split:
    try:
        from matseg_nb.data import open_dataset

        return load_split(open_dataset(dataset), "train")
    except Exception as exc:  # noqa: BLE001 - fall back to synthetic data so the script always runs
        print(f"note: {dataset} unavailable ({exc}); using random images", file=sys.stderr)
        g = torch.Generator().manual_seed(0)
        return Split([torch.rand(1, 2 * size, 2 * size, generator=g).numpy() for _ in range(8)],
                     [torch.randint(0, 3, (2 * size, 2 * size), generator=g).numpy() for _ in range(8)],
                     [f"r{i}" for i in range(8)])


def bench_pair(encoder: str, decoder: str, split: Split, device: torch.device, size: int, batch: int,
               steps: int, warmup: int, amp: bool, workers: int) -> dict:
    """Train ``warmup + steps`` steps; time the last ``steps``. Returns one result row."""
    torch.manual_seed(0)
    classes = int(max(m.max() for m in split.masks)) + 1
    model, _ = build_model(encoder, decoder, split.images[0].shape[0], classes, "none")
    model = model.to(device).train()
    if amp:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = _losses(classes)["ce+dice"]
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    ds = CropDataset(split, size, (steps + warmup) * batch, {"hflip": True, "vflip": True, "rot90": True})
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, pin_memory=device.type == "cuda")
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize()
    wait = compute = 0.0
    t_prev = time.perf_counter()
    t_start = None
    for i, (x, y) in enumerate(loader):
        t_got = time.perf_counter()
        if i == warmup:
            t_start, wait, compute = t_got, 0.0, 0.0
        wait += t_got - t_prev
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if amp:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and cuda):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if cuda:
            torch.cuda.synchronize()
        t_prev = time.perf_counter()
        compute += t_prev - t_got
    if t_start is None:
        raise RuntimeError("no timed steps: raise --steps")
    total = t_prev - t_start
    return {
        "encoder": encoder, "decoder": decoder, "amp_channels_last": amp, "n_params": n_params(model),
        "images_per_s": round(steps * batch / total, 2), "step_time_s": round(total / steps, 4),
        "data_wait_share": round(wait / total, 4), "final_loss": float(loss.detach()),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if cuda else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--dataset", default="nasa-ebc1")
    ap.add_argument("--pairs", nargs="*", help="encoder:decoder, default the paper's six")
    ap.add_argument("--size", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = args.device != "cpu" and torch.cuda.is_available()
    if args.device == "cuda" and not use_cuda:
        print("error: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    device = torch.device("cuda" if use_cuda else "cpu")
    size = args.size or (512 if use_cuda else 64)
    batch = args.batch or (16 if use_cuda else 2)
    steps = args.steps or (30 if use_cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if use_cuda else 1)
    workers = args.workers if use_cuda else 0
    modes = [False, True] if use_cuda else [False]
    if not use_cuda:
        print(f"CPU FALLBACK: no CUDA device; tiny run ({size} px, batch {batch}, {steps} steps, fp32 only). "
              "The figures are not comparable to the paper's GPU setting.")
    pairs = [tuple(p.split(":")) for p in args.pairs] if args.pairs else [
        (e, d) for e in PAPER_ENCODERS for d in PAPER_DECODERS]
    split = _split(args.dataset, size)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    rows: list[dict] = []
    result = {
        "script": "benchmarks/train_throughput.py", "utc": stamp, "device": device.type,
        "device_name": torch.cuda.get_device_name(0) if use_cuda else platform.processor() or "cpu",
        "cpu_fallback": not use_cuda, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "dataset": args.dataset, "crop_px": size, "batch": batch, "timed_steps": steps, "warmup_steps": warmup,
        "loader_workers": workers, "encoder_weights": "none", "loss": "ce+dice", "optimizer": "adam lr 1e-4",
        "results": rows,
    }
    path = args.out / f"train_throughput_{device.type}_{stamp}.json"
    for enc, dec in pairs:
        for amp in modes:
            row = bench_pair(enc, dec, split, device, size, batch, steps, warmup, amp, workers)
            rows.append(row)
            out = atomic_write_json(path, result)  # after every pair: a timeout keeps what was measured
            mem = f"{row['peak_gpu_mem_gib']:.2f} GiB" if row["peak_gpu_mem_gib"] is not None else "n/a"
            print(f"{enc:>22} {dec:<14} amp+cl={str(amp):<5} {row['images_per_s']:8.2f} img/s  "
                  f"step {row['step_time_s']:.3f}s  data-wait {row['data_wait_share']:.1%}  peak {mem}", flush=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
