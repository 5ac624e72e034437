"""Shared pieces of the real-server dashboard tests: a free loopback port, starting Voilà on it, and stopping
the server's group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (started with ``start_new_session=True``); SIGKILL after 20 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def start_voila(ws: Path, log_path: Path, **env: str) -> tuple[subprocess.Popen, str, IO[bytes]]:
    """(process, url with token, open log file) of ``matseg dashboard``'s Voilà server over workspace ``ws`` on
    a free loopback port, once it accepts connections (90 s at most; the test fails with the log otherwise).
    ``env``: extra environment variables. Stop it with :func:`stop_server`, then close the log."""
    import pytest

    from matseg_nb.commands.dashboard import dashboard_env, new_token, voila_command

    port, token = free_port(), new_token()
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(voila_command(port), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env={**dashboard_env(ws, token), **env}, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/?token={token}", log
        except OSError:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.5)
    pytest.fail("voila did not start: " + log_path.read_text())
