"""Case 2 (QC): per-point PRDC features + GMM fit/score, ours vs a straightforward NumPy/scikit-learn
implementation of the same formulas (full distance matrices, ``np.partition``), in the same run.

Reference sets of n = 5 000 / 20 000 / 50 000 points of dimension 2048 (a 32-cluster Gaussian
mixture, float64), 1 000 query points (half in-distribution, half shifted). Each (implementation, n)
runs in its own subprocess so the peak resident memory (``VmHWM``) is that implementation's
own; both use the same thread count. Ours computes the reference radii once and reuses them for
both query sets (the public Forte code recomputes them per call; so does the alternative). GMM: n_components 1..8 by BIC on the reference PRDC features of
the first 1 000 reference points against the rest, then scoring the queries (identical code on both
sides, timed separately). The straightforward version is skipped when its n x n float64 matrix would
exceed ``--alt-max-gb`` (default 8 GB; 50 000 points need 20 GB).

``python -m benchmarks.qc_prdc [--sizes 5000 20000 50000] [--queries 1000] [--threads 2]``
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

DIM = 2048


def make_data(n: int, m: int, d: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reference (n, d) from 32 Gaussian clusters; queries (m, d): half from the clusters, half shifted."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.0, size=(32, d)).astype(np.float32)
    ref = centers[rng.integers(0, 32, n)] + rng.normal(0, 1.0, size=(n, d)).astype(np.float32)
    q = centers[rng.integers(0, 32, m)] + rng.normal(0, 1.0, size=(m, d)).astype(np.float32)
    q[m // 2 :] += rng.normal(0, 0.25, size=(1, d)).astype(np.float32)
    return ref.astype(np.float64), q.astype(np.float64)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MB): VmHWM, which, unlike ``ru_maxrss``, does not inherit the
    parent's resident size across fork + exec (the runner's parent holds GBs of models)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: ru_maxrss (kB on Linux, bytes on macOS)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(impl: str, n: int, m: int, out: str, symmetric_blas: bool = True) -> None:
    from sklearn.mixture import GaussianMixture

    from matseg_nb.qc.prdc import prdc, prdc_bruteforce

    ref, q = make_data(n, m)
    fit_q, ref_rest = ref[:1000], ref[1000:]
    base_rss = _peak_rss_mb()
    t0 = time.perf_counter()
    if impl == "ours":  # reference radii computed once and reused for both query sets (as fit_qc does)
        import torch

        from matseg_nb.qc.prdc import knn_radii_sq

        radii = knn_radii_sq(torch.as_tensor(ref_rest), 5)
        feats_q = prdc(ref_rest, q, 5, reference_radii_sq=radii)
        feats_fit = prdc(ref_rest, fit_q, 5, reference_radii_sq=radii)
    else:  # as the public Forte code: every call recomputes the reference radii
        feats_q = prdc_bruteforce(ref_rest, q, 5, symmetric_blas=symmetric_blas)
        feats_fit = prdc_bruteforce(ref_rest, fit_q, 5, symmetric_blas=symmetric_blas)
    t_prdc = time.perf_counter() - t0
    t0 = time.perf_counter()
    best = min((GaussianMixture(c, covariance_type="full", random_state=0).fit(feats_fit) for c in range(1, 9)),
               key=lambda g: g.bic(feats_fit))
    scores = best.score_samples(feats_q)
    t_gmm = time.perf_counter() - t0
    np.save(out + ".npy", np.concatenate([feats_q, feats_fit, scores[:, None].repeat(4, 1)]))
    peak = _peak_rss_mb()
    Path(out + ".json").write_text(json.dumps({
        "prdc_s": t_prdc, "gmm_s": t_gmm, "peak_rss_mb": peak, "data_rss_mb": base_rss,
        "n_components": int(best.n_components)}))


def _spawn(impl: str, n: int, m: int, threads: int, tmp: str) -> tuple[dict, np.ndarray]:
    """Run one implementation in a fresh process; if numpy's syrk crashes, rerun with gemm (noted)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    out = os.path.join(tmp, f"{impl}_{n}")
    rc = 0
    for symmetric in (True, False):
        code = (f"import torch; torch.set_num_threads({threads}); from benchmarks.qc_prdc import _child; "
                f"_child({impl!r}, {n}, {m}, {out!r}, {symmetric})")
        rc = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1]).returncode
        if rc == 0:
            info = json.loads(Path(out + ".json").read_text())
            info["blas"] = "syrk (X @ X.T)" if symmetric else "gemm (X @ copy(X).T): the syrk run crashed"
            return info, np.load(out + ".npy")
        if impl == "ours":
            break
    raise RuntimeError(f"{impl} n={n} failed with return code {rc}")


def run(quick: bool = False, sizes: tuple[int, ...] | None = None, queries: int = 1000, threads: int = 2,
        alt_max_gb: float = 8.0) -> list[dict]:
    """Rows for ``benchmarks.common.record``: ratio = alternative time / our time (PRDC + GMM)."""
    from benchmarks.common import record

    sizes = sizes or ((2000,) if quick else (5000, 20000, 50000))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            ours, f_ours = _spawn("ours", n, queries, threads, tmp)
            alt_gb = (n - 1000) ** 2 * 8 / 1e9
            alt, diff = None, None
            if alt_gb <= alt_max_gb:
                alt, f_alt = _spawn("bruteforce", n, queries, threads, tmp)
                feat = slice(0, queries + 1000)  # PRDC features of queries + GMM-fit points
                diff = float(np.abs(f_ours[feat] - f_alt[feat]).max())
            t_ours = ours["prdc_s"] + ours["gmm_s"]
            rows.append(record(
                "qc", f"prdc+gmm n={n} d={DIM} m={queries}", t_ours, "numpy/sklearn full matrices",
                None if alt is None else alt["prdc_s"] + alt["gmm_s"], diff,
                ours_prdc_s=round(ours["prdc_s"], 3), alt_prdc_s=None if alt is None else round(alt["prdc_s"], 3),
                prdc_ratio=None if alt is None else round(alt["prdc_s"] / ours["prdc_s"], 2),
                gmm_s=round(ours["gmm_s"], 3), ours_peak_rss_mb=round(ours["peak_rss_mb"]),
                alt_peak_rss_mb=None if alt is None else round(alt["peak_rss_mb"]),
                data_rss_mb=round(ours["data_rss_mb"]), threads=threads,
                alt_blas=None if alt is None else alt["blas"],
                note=None if alt is not None else f"alternative skipped: n x n float64 matrix needs {alt_gb:.0f} GB",
            ))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import markdown_table, write_results

    ap = argparse.ArgumentParser(prog="python -m benchmarks.qc_prdc", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alt-max-gb", type=float, default=8.0)
    args = ap.parse_args(argv)
    rows = run(sizes=tuple(args.sizes), queries=args.queries, threads=args.threads, alt_max_gb=args.alt_max_gb)
    print(markdown_table(rows))
    print("wrote", write_results("qc", rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
