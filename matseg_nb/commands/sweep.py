"""``matseg sweep PROFILE --out DIR``: run every job of a profile (exit 0 all complete, 1 some failed)."""

from __future__ import annotations

import argparse
import os
import sys

from matseg_nb.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sweep", help="run every job of a profile (resumable)",
                              description="Run every job of PROFILE into DIR/<job-id>/ with papermill; "
                              "rerunning skips complete jobs and redoes the others.")
    p.add_argument("profile", help="profile JSON file")
    p.add_argument("--out", required=True, help="sweep folder (created; reused to resume)")
    p.add_argument("--executor", default=None,
                   help="local | dask | slurm (default: the profile's execution.executor)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (dask executor)")
    p.add_argument("--workers", type=int, default=None,
                   help="concurrent jobs: Dask workers / Slurm jobs / GPUs used by local")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per job (default: cores // concurrent jobs, at least 1)")
    p.add_argument("--notebook", default=None, help="training notebook (default: notebooks/02_train.ipynb)")
    p.add_argument("--timeout", type=float, default=None, help="per-cell time limit in seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-job-script", action="store_true",
                   help="print the Slurm job script that --executor slurm submits (one per worker job) and exit; "
                   "submits nothing")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from matseg_nb.sweep import format_status, run_sweep, slurm_job_script, sweep_status

    if args.print_job_script:
        print(slurm_job_script(args.profile, args.out))
        return 0
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: expected a positive integer, found {args.workers}")
    try:
        summary = run_sweep(args.profile, args.out, executor=args.executor, scheduler=args.scheduler,
                            workers=args.workers, notebook=args.notebook, progress=not args.no_progress,
                            threads=args.threads, timeout_s=args.timeout)
    except KeyboardInterrupt:
        # running jobs hold threads that would keep the process alive until they end; their kernels
        # notice the exit and stop, and no folder of an unfinished job has COMPLETE
        print("interrupted: rerun the same command to resume", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)
    print(format_status(sweep_status(args.out)))
    if not summary.ok:
        print(f"{summary.counts['failed']} job(s) failed; see error.json in their folders", file=sys.stderr)
    return summary.exit_code
