"""Shared pieces of the real-server dashboard tests: a free loopback port, starting Voilà on it, and stopping
the server's group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def browser_marks() -> list:
    """The ``pytestmark`` of a browser walk: browser, slow, skipped without Debian's chromium."""
    import pytest

    return [pytest.mark.browser, pytest.mark.slow,
            pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}")]


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


@contextmanager
def dashboard_page(url: str, timeout_ms: int, external: list[str] | None = None) -> Iterator[Any]:
    """A Playwright page of Debian's headless chromium on the dashboard at ``url``, once its profile editor
    shows (``timeout_ms``); requests off the loopback are aborted (and their URLs appended to ``external``).
    The browser is closed afterwards."""
    from playwright.sync_api import sync_playwright

    def only_local(route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            if external is not None:
                external.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.route("**/*", only_local)
            page.goto(url, timeout=timeout_ms)
            page.wait_for_selector(".matseg-profile-editor", timeout=timeout_ms)
            yield page
        finally:
            browser.close()
