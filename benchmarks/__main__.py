"""``python -m benchmarks [--only CASE ...] [--quick]``: run the CPU cases side by side and write
``benchmarks/results/<case>.json`` plus ``benchmarks/results/RESULTS.md`` (one Markdown table).

Cases (each module exposes ``run(quick: bool) -> list[dict]`` rows from :func:`benchmarks.common.record`):
heatmap (counterfactual heatmap vs literal loop vs Captum Occlusion), qc (per-point PRDC + GMM vs a
straightforward NumPy/scikit-learn version), metrics (vs torchmetrics), sweep (papermill and Dask overhead),
segment (deployment inference vs MONAI sliding_window_inference).
GPU cases (training throughput, GPU heatmap) run from ``benchmarks/gpu.sh``.
"""

from __future__ import annotations

import argparse
import importlib
import time

from benchmarks.common import RESULTS, machine, markdown_table, write_results

CASES = {
    "heatmap": "benchmarks.heatmap",
    "qc": "benchmarks.qc_prdc",
    "metrics": "benchmarks.metrics_bench",
    "sweep": "benchmarks.sweep_overhead",
    "segment": "benchmarks.segment",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(CASES), help="run only these cases")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run), not the stated sizes")
    args = ap.parse_args(argv)
    all_rows: list[dict] = []
    for case in args.only or list(CASES):
        t0 = time.perf_counter()
        print(f"== {case}", flush=True)
        rows = importlib.import_module(CASES[case]).run(quick=args.quick)
        write_results(case, rows)
        all_rows.extend(rows)
        print(markdown_table(rows), f"({time.perf_counter() - t0:.0f} s)", flush=True)
    m = machine()
    header = f"# Benchmark results\n\nMachine: {m}\n{'(quick sizes)' if args.quick else ''}\n\n"
    (RESULTS / "RESULTS.md").write_text(header + markdown_table(all_rows))
    print(f"wrote {RESULTS / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
