"""Dashboard access control at HTTP level, in the real server started by ``matseg dashboard``.

Without the token: the page, the kernel API and the kernel websocket (the only way the page's sweep,
QC and explain buttons reach the kernel) are refused; a token in the wrong place gets a plain refusal
(the login page, no dashboard). With the token: the page renders and the websocket upgrades.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from _dashboard_helpers import free_port, stop_server

from matseg_nb.cli import main

REPO = Path(__file__).resolve().parents[1]
RENDER_S = 300  # Voilà executes the dashboard notebook (imports torch) before it answers


def request(port: int, method: str, path: str, headers: dict | None = None, timeout: float = 30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def websocket_status(port: int, path: str, headers: dict | None = None) -> int:
    """HTTP status of a websocket upgrade request (101 = accepted)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                           "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                           "Host": f"127.0.0.1:{port}", **(headers or {})})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture()
def dashboard(tmp_path):
    """(port, token, workspace) of ``matseg dashboard`` on a free loopback port; stopped afterwards."""
    port = free_port()
    ws = tmp_path / "ws"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONUNBUFFERED": "1"}
    env.pop("JUPYTER_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "matseg_nb.cli", "dashboard", "--port", str(port),
                             "--workspace", str(ws)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    out = b""
    token = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and token is None:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                out += os.read(proc.stdout.fileno(), 4096)
                m = re.search(rb"\?token=([0-9a-f]{48})", out)
                token = m.group(1).decode() if m else None
            assert proc.poll() is None, out.decode()
        assert token, out.decode()
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield port, token, ws
    finally:
        stop_server(proc)


def refused(status: int, headers: dict) -> bool:
    """403, or a redirect to the login form."""
    return status == 403 or (status in (301, 302) and "/login" in headers.get("Location", ""))


@pytest.mark.slow
def test_token_refuses_and_accepts_in_the_real_server(dashboard):
    port, token, _ws = dashboard
    # without a token, or with a wrong one / one in the wrong place: refused, no dashboard in the answer
    for path, headers in [("/", {}), ("/?token=" + "0" * 48, {}), (f"/{token}", {}), (f"/?tok={token}", {}),
                          ("/", {"X-Token": token}), ("/", {"Cookie": f"token={token}"})]:
        status, hdrs, body = request(port, "GET", path, headers)
        assert refused(status, hdrs) or status == 404, (path, headers, status)
        assert "matseg" not in body.lower() and "dashboard_app" not in body
    status, hdrs, _ = request(port, "GET", "/")
    login = urllib.parse.urljoin("/", hdrs["Location"])
    status, _, body = request(port, "GET", login)
    assert status == 200 and "password" in body.lower() and "matseg" not in body.lower()  # a plain login form

    # with the token the dashboard renders (Voilà executes the notebook and starts its kernel)
    status, _, body = request(port, "GET", f"/?token={token}", timeout=RENDER_S)
    assert status == 200, body[-2000:]
    assert "application/vnd.jupyter.widget-view+json" in body and "Traceback" not in body  # the widget tree
    kernel_ids = re.findall(r'"kernelId":\s*"([0-9a-f-]{36})"', body) or re.findall(
        r"kernel[_-]?[iI]d[\"']?\s*[:=]\s*[\"']([0-9a-f-]{36})", body)
    assert kernel_ids, "no kernel id in the rendered page"
    kid = kernel_ids[0]

    # the kernel (where the sweep/QC/explain buttons run) cannot be reached without the token
    channels = f"/api/kernels/{kid}/channels"
    assert websocket_status(port, channels) == 403
    assert websocket_status(port, channels + "?token=" + "0" * 48) == 403
    status, hdrs, _ = request(port, "GET", f"/api/kernels/{kid}")
    assert refused(status, hdrs)
    status, hdrs, _ = request(port, "POST", f"/voila/api/shutdown/{kid}")
    assert refused(status, hdrs)
    # ... and can with it
    assert websocket_status(port, channels + f"?token={token}") == 101
    status, _, body = request(port, "GET", f"/api/kernels/{kid}", {"Authorization": f"token {token}"})
    assert status == 200 and json.loads(body)["id"] == kid


def test_no_token_needs_loopback_and_warns(tmp_path, capsys):
    ws = str(tmp_path / "w")
    cfg = str(tmp_path / "none.json")
    assert main(["dashboard", "--workspace", ws, "--config", cfg, "--no-token", "--ip", "0.0.0.0", "--dry-run"]) == 2
    assert "--no-token" in capsys.readouterr().err
    assert main(["dashboard", "--workspace", ws, "--config", cfg, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--token" in out and "JUPYTER_TOKEN=<token>" in out
    assert main(["dashboard", "--workspace", ws, "--config", cfg, "--ip", "0.0.0.0", "--dry-run"]) == 0
    assert "--token" in capsys.readouterr().out  # a wider bind keeps the token
    assert main(["dashboard", "--workspace", ws, "--config", cfg, "--no-token", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--token" not in out and "JUPYTER_TOKEN" not in out


def test_no_token_prints_a_loud_warning(tmp_path, monkeypatch, capsys):
    from matseg_nb.commands import dashboard as cmd

    monkeypatch.setattr(cmd.subprocess, "call", lambda argv, env: 0)
    assert main(["dashboard", "--workspace", str(tmp_path / "w"), "--config", str(tmp_path / "c.json"),
                 "--no-token"]) == 0
    err = capsys.readouterr().err
    assert err.count("WARNING") >= 3 and "NO access control" in err


def test_password_hash_from_the_config(tmp_path, monkeypatch, capsys):
    from jupyter_server.auth.security import passwd_check

    from matseg_nb.commands import dashboard as cmd

    cfg = tmp_path / "cfg" / "dashboard.json"
    cmd.store_password_hash(cfg, "correct horse")
    assert oct(cfg.stat().st_mode & 0o777) == "0o600"
    stored = json.loads(cfg.read_text())["password_hash"]
    assert passwd_check(stored, "correct horse") and not passwd_check(stored, "wrong")
    seen = {}
    monkeypatch.setattr(cmd.subprocess, "call", lambda argv, env: seen.update(argv=argv, env=env) or 0)
    assert main(["dashboard", "--workspace", str(tmp_path / "w"), "--config", str(cfg)]) == 0
    assert f"--PasswordIdentityProvider.hashed_password={stored}" in seen["argv"]
    assert "--token" not in seen["argv"] and "JUPYTER_TOKEN" not in seen["env"]
    assert "asks for the password" in capsys.readouterr().out
    cfg.write_text(json.dumps({"password_hash": "plain-text"}))
    assert main(["dashboard", "--workspace", str(tmp_path / "w"), "--config", str(cfg)]) == 2
    assert "password_hash" in capsys.readouterr().err
    with pytest.raises(Exception, match="at least 8"):
        cmd.store_password_hash(cfg, "short")


def test_token_goes_in_the_environment_not_the_command_line(tmp_path, monkeypatch):
    from matseg_nb.commands import dashboard as cmd

    seen = {}
    monkeypatch.setattr(cmd.subprocess, "call", lambda argv, env: seen.update(argv=argv, env=env) or 0)
    assert main(["dashboard", "--workspace", str(tmp_path / "w"), "--config", str(tmp_path / "c.json")]) == 0
    token = seen["env"]["JUPYTER_TOKEN"]
    assert re.fullmatch(r"[0-9a-f]{48}", token)
    assert not any(token in a for a in seen["argv"]) and "--token" in seen["argv"]
