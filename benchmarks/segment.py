"""Case: deployment inference (``matseg segment``), ours vs MONAI ``sliding_window_inference``, same run.

1. Throughput at equal output: the same model (smp UNet-ResNet18, random weights, 1 channel, 3 classes), tile,
   overlap (fraction ``overlap / tile``) and Gaussian blending (sigma = tile / 8); ours
   (``models.tiling.predict_tiled(blend="gaussian")``, band-streamed) vs MONAI (predictor = softmax of the
   model, ``mode="gaussian"``). Images/s, peak resident memory (``VmHWM``, each side in its own process) and
   the largest absolute difference of the class probabilities (goal <= 1e-4).
2. One 8192 x 8192 16-bit image: peak memory of our whole per-image path (read the TIFF, normalise, tiled
   inference, mask, overlay, measurements) and of our and MONAI's inference alone (full-size probabilities
   out), with a 1x1-convolution model, so that the images, tiling and blending dominate, not the model.
3. Share of wall time outside the forward passes in our per-image path (``segment.pipeline.segment_one``:
   reading, normalising, tiling, blending, writing, measurements; QC off) with the UNet-ResNet18 on
   ``--images`` images of ``--size`` px, after one warm-up image (the path's one-time imports): goal <= 15 %.

``python -m benchmarks.segment [--size 2048] [--images 4] [--big 8192] [--tile 512] [--overlap 128] [--threads 2]
[--rounds 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(encoder: str, device: str):
    """smp UNet with ``encoder`` (random weights, 1 channel, 3 classes), or ``pointwise``: a 1x1 convolution
    (no model cost: what is left is the tiling, blending and image handling)."""
    import torch
    from torch import nn

    from matseg_nb.models import build_model

    torch.manual_seed(0)
    if encoder == "pointwise":
        model = nn.Sequential(nn.Conv2d(1, 3, 1))
        model.encoder = nn.Identity()
        model.encoder.output_stride = 32
        return model.to(device).eval()
    model, _ = build_model(encoder, "Unet", 1, 3, "none")
    return model.to(device).eval()


def _warm_up(model, tile: int, device: str) -> None:
    """One forward pass on a tile before timing (lazy kernel initialisation is not per-image cost)."""
    import torch

    with torch.no_grad():
        model(torch.rand(4, 1, tile, tile, device=device))


def _image(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((size // 16, size // 16)).astype(np.float32)
    img = np.kron(small, np.ones((16, 16), np.float32)) + 0.1 * rng.random((size, size), dtype=np.float32)
    return img[None]


def _child(impl: str, size: int, n_images: int, tile: int, overlap: int, encoder: str, device: str, out: str) -> None:
    import torch

    model = _model(encoder, device)
    imgs = [_image(size, i) for i in range(n_images)]
    _warm_up(model, tile, device)
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    last = None
    for img in imgs:
        x = torch.from_numpy(img)
        if impl == "ours":
            from matseg_nb.models.tiling import predict_tiled

            last = predict_tiled(model, x, 3, tile, overlap, batch_size=4, blend="gaussian")
        else:
            from monai.inferers import sliding_window_inference

            with torch.no_grad():
                last = sliding_window_inference(x[None].to(device), (tile, tile), 4, lambda t: model(t).softmax(1),
                                                overlap=overlap / tile, mode="gaussian", sigma_scale=0.125)[0].cpu()
        if device == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    np.save(out + ".npy", last[:, ::7, ::7].numpy() if size > 4096 else last.numpy())
    Path(out + ".json").write_text(json.dumps({"wall_s": wall, "images_per_s": n_images / wall,
                                               "peak_rss_mb": _peak_rss_mb(), "base_rss_mb": base}))


def _pipeline_child(size: int, n_images: int, tile: int, overlap: int, encoder: str, device: str, tmp: str,
                    out: str) -> None:
    """Our whole per-image path on 16-bit TIFFs; forward time measured inside the tiler."""
    import tifffile

    from matseg_nb.segment.folder import SegmentFolder, default_classes
    from matseg_nb.segment.inputs import InputImage
    from matseg_nb.segment.model import DeployedModel
    from matseg_nb.segment.pipeline import SegmentSettings, segment_one

    paths = []
    for i in range(n_images):
        p = Path(tmp) / f"img{size}_{i}.tif"
        tifffile.imwrite(p, (_image(size, i)[0] / 1.1 * 65535).astype(np.uint16))
        paths.append(p)
    model = _model(encoder, device)
    dm = DeployedModel(model, "percentile", 1, ["matrix", "a", "b"], 32)
    folder = SegmentFolder(Path(tmp) / f"out{size}")
    folder.write_classes(default_classes(dm.class_names))
    settings = SegmentSettings(tile=tile, overlap=overlap, qc=False, device=device)
    _warm_up(model, tile, device)
    # one small image first: the per-image path's lazy imports (scikit-image, imageio, ...) are a one-time
    # cost per process, like the model's warm-up, not per-image cost
    warm = Path(tmp) / "warm_up.tif"
    tifffile.imwrite(warm, (_image(128, 99)[0] / 1.1 * 65535).astype(np.uint16))
    segment_one(dm, InputImage(warm, "warm_up", None, 0.01, "--pixel-size"), folder, settings, "µm", None, {})
    base = _peak_rss_mb()
    timer: dict = {}
    t0 = time.perf_counter()
    for p in paths:
        rec = segment_one(dm, InputImage(p, p.stem, None, 0.01, "--pixel-size"), folder, settings, "µm", None, timer)
        assert rec.segmented, rec.reason
    wall = time.perf_counter() - t0
    Path(out + ".json").write_text(json.dumps({
        "wall_s": wall, "forward_s": timer.get("forward_s", 0.0), "peak_rss_mb": _peak_rss_mb(), "base_rss_mb": base,
        "images_per_s": n_images / wall}))


def _spawn(code: str, threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    pre = f"import torch; torch.set_num_threads({threads}); "
    rc = subprocess.run([sys.executable, "-c", pre + code], env=env, cwd=ROOT).returncode
    if rc != 0:
        raise RuntimeError(f"benchmark child failed ({rc}): {code}")


def run(quick: bool = False, size: int | None = None, images: int | None = None, tile: int = 512,
        overlap: int = 128, threads: int = 2, big: int | None = None, device: str | None = None,
        rounds: int = 2) -> list[dict]:
    """Rows for ``benchmarks.common.record``; ratio = MONAI time / our time (best of ``rounds`` interleaved
    runs of each side for the throughput case)."""
    import torch

    from benchmarks.common import record

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    size = size or (1024 if quick else 2048)
    images = images or (2 if quick else 4)
    big = big or (2048 if quick else 8192)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        res: dict = {}
        for rnd in range(rounds):  # interleaved rounds, best wall time of each side (a shared machine drifts)
            for impl in ("ours", "monai"):
                out = os.path.join(tmp, f"{impl}_{size}_{rnd}")
                _spawn(f"from benchmarks.segment import _child; _child({impl!r}, {size}, {images}, {tile}, "
                       f"{overlap}, 'resnet18', {device!r}, {out!r})", threads)
                got = (json.loads(Path(out + ".json").read_text()), np.load(out + ".npy"))
                if impl not in res or got[0]["wall_s"] < res[impl][0]["wall_s"]:
                    res[impl] = got
        (o, po), (m, pm) = res["ours"], res["monai"]
        rows.append(record("segment", f"UNet-ResNet18 {images}x {size}px tile {tile} overlap {overlap} gaussian",
                           o["wall_s"], "MONAI sliding_window_inference", m["wall_s"], float(np.abs(po - pm).max()),
                           ours_images_per_s=round(o["images_per_s"], 3), alt_images_per_s=round(m["images_per_s"], 3),
                           ours_peak_rss_mb=round(o["peak_rss_mb"]), alt_peak_rss_mb=round(m["peak_rss_mb"]),
                           device=device, threads=threads, rounds=rounds))
        print(json.dumps(rows[-1]), flush=True)
        res = {}
        for impl in ("ours", "monai"):
            out = os.path.join(tmp, f"{impl}_{big}")
            _spawn(f"from benchmarks.segment import _child; _child({impl!r}, {big}, 1, {tile}, {overlap}, "
                   f"'pointwise', {device!r}, {out!r})", threads)
            res[impl] = (json.loads(Path(out + ".json").read_text()), np.load(out + ".npy"))
        out = os.path.join(tmp, f"pipe_{big}")
        _spawn(f"from benchmarks.segment import _pipeline_child; _pipeline_child({big}, 1, {tile}, {overlap}, "
               f"'pointwise', {device!r}, {tmp!r}, {out!r})", threads)
        pipe = json.loads(Path(out + ".json").read_text())
        (o, po), (m, pm) = res["ours"], res["monai"]
        rows.append(record("segment", f"one {big}x{big} image, 1x1-conv model (memory)", o["wall_s"],
                           "MONAI sliding_window_inference", m["wall_s"], float(np.abs(po - pm).max()),
                           ours_peak_rss_mb=round(o["peak_rss_mb"]), alt_peak_rss_mb=round(m["peak_rss_mb"]),
                           ours_whole_path_peak_rss_mb=round(pipe["peak_rss_mb"]),
                           whole_path_s=round(pipe["wall_s"], 2), device=device, threads=threads,
                           note="whole path = read 16-bit TIFF, normalise, tiles, mask, overlay, measurements"))
        print(json.dumps(rows[-1]), flush=True)
        out = os.path.join(tmp, f"pipe_{size}")
        _spawn(f"from benchmarks.segment import _pipeline_child; _pipeline_child({size}, {images}, {tile}, {overlap}, "
               f"'resnet18', {device!r}, {tmp!r}, {out!r})", threads)
        pipe = json.loads(Path(out + ".json").read_text())
        share = 1 - pipe["forward_s"] / pipe["wall_s"]
        rows.append(record("segment", f"whole per-image path, UNet-ResNet18 {images}x {size}px", pipe["wall_s"],
                           "forward passes alone", pipe["forward_s"], None,
                           share_outside_forward=round(share, 3), images_per_s=round(pipe["images_per_s"], 3),
                           peak_rss_mb=round(pipe["peak_rss_mb"]), device=device, threads=threads,
                           goal="share_outside_forward <= 0.15"))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import markdown_table, write_results

    ap = argparse.ArgumentParser(prog="python -m benchmarks.segment", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--big", type=int, default=None, help="side of the one-image memory case (default 8192)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the throughput case (best of)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    rows = run(args.quick, args.size, args.images, args.tile, args.overlap, args.threads, args.big, args.device,
               args.rounds)
    write_results("segment", rows)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
