"""``matseg dashboard [--port P] [--workspace DIR]``: serve the Voilà dashboard on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from matseg_nb.errors import UserError

NOTEBOOK = Path(__file__).resolve().parent.parent / "widgets" / "dashboard.ipynb"
WORKSPACE_ENV = "MATSEG_WORKSPACE"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboard", help="serve the Voila dashboard (Configure/Run/Compare/Quality/Explain)",
                              description="Serves matseg_nb/widgets/dashboard.ipynb with Voila, bound to 127.0.0.1. "
                              "Every file the dashboard reads or writes stays inside --workspace.")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument("--workspace", default="workspace", help="workspace folder (created; default ./workspace)")
    p.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--dry-run", action="store_true", help="print the voila command instead of running it")
    p.set_defaults(func=handler)


def voila_command(port: int, ip: str = "127.0.0.1") -> list[str]:
    """The Voilà argument list (no shell) for the dashboard notebook."""
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    base = [voila] if voila else [sys.executable, "-m", "voila"]
    return [*base, str(NOTEBOOK), "--no-browser", f"--Voila.ip={ip}", f"--port={port}"]


def handler(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UserError(f"--port: expected 1..65535, found {args.port}")
    workspace = Path(args.workspace).expanduser().resolve()
    if workspace.exists() and not workspace.is_dir():
        raise UserError(f"--workspace {args.workspace}: expected a folder, found a file")
    workspace.mkdir(parents=True, exist_ok=True)
    cmd = voila_command(args.port, args.ip)
    env = dict(os.environ, **{WORKSPACE_ENV: str(workspace)})
    if args.dry_run:
        print(f"{WORKSPACE_ENV}={workspace} " + " ".join(cmd))
        return 0
    print(f"dashboard: http://{args.ip}:{args.port}/  (workspace {workspace}; Ctrl-C stops the server, "
          "not running sweeps)", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
