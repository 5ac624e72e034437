"""The dashboard's password page at HTTP level, in the real server started by ``matseg dashboard``.

With a password hash in the config (``matseg dashboard --set-password``) the server asks for the
password on jupyter_server's login form: a wrong password is refused (401, no login cookie, the kernel
API stays closed); the right one sets the login cookie, which then opens the kernel API (where the
sweep, QC and explain buttons act) and the dashboard's address.
"""

from __future__ import annotations

import http.client
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

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
KERNEL = "/api/kernels/00000000-0000-4000-8000-000000000000"  # Voilà serves /api/kernels/<id> only


def request(port: int, method: str, path: str, headers: dict | None = None, body: str | None = None):
    """(status, headers as a list of pairs, body text) of one request to the server."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    """name -> value of every Set-Cookie header."""
    out = {}
    for key, value in headers:
        if key.lower() == "set-cookie":
            name, _, rest = value.partition("=")
            out[name.strip()] = rest.split(";", 1)[0]
    return out


@pytest.fixture()
def password_dashboard(tmp_path):
    """Port of ``matseg dashboard`` with a stored password hash; stopped afterwards."""
    from matseg_nb.commands.dashboard import store_password_hash

    cfg = store_password_hash(tmp_path / "config" / "dashboard.json", PASSWORD)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JUPYTER_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "matseg_nb.cli", "dashboard", "--port", str(port),
                             "--workspace", str(tmp_path / "ws"), "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    out = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                out += os.read(proc.stdout.fileno(), 4096)
            assert proc.poll() is None, out.decode()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
        assert b"asks for the password" in out and b"?token=" not in out, out.decode()
        yield port
    finally:
        stop_server(proc)


def refused(status: int, headers: list[tuple[str, str]]) -> bool:
    """403, or a redirect to the login form."""
    return status == 403 or (status in (301, 302) and "/login" in dict(headers).get("Location", ""))


def login(port: int, password: str) -> tuple[int, dict[str, str], str]:
    """POST the login form (with its XSRF cookie and field) as a browser does."""
    status, headers, body = request(port, "GET", "/login")
    assert status == 200 and 'name="password"' in body
    xsrf = cookies(headers).get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', body).group(1)
    form = urllib.parse.urlencode({"password": password, "_xsrf": xsrf})
    status, headers, body = request(port, "POST", "/login", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"_xsrf={xsrf}"})
    return status, cookies(headers), body


@pytest.mark.slow
def test_wrong_password_is_refused_and_the_right_one_accepted(password_dashboard):
    port = password_dashboard
    status, headers, _ = request(port, "GET", KERNEL)
    assert refused(status, headers)
    status, headers, _ = request(port, "GET", "/")
    assert status in (301, 302) and "/login" in dict(headers)["Location"]

    status, set_cookies, body = login(port, "wrong password")
    assert status == 401 and "Invalid credentials" in body
    assert not any(name.startswith("username-") for name in set_cookies)
    assert refused(*request(port, "GET", KERNEL)[:2])

    status, set_cookies, _ = login(port, PASSWORD)
    assert status == 302
    session = {k: v for k, v in set_cookies.items() if k.startswith("username-")}
    assert session, set_cookies
    cookie = "; ".join(f"{k}={v}" for k, v in session.items())
    # the kernel API answers for the logged-in user: an unknown kernel is 404 (not a refusal)
    status, headers, _ = request(port, "GET", KERNEL, {"Cookie": cookie})
    assert status == 404, (status, headers)
    status, headers, _ = request(port, "GET", "/login", {"Cookie": cookie})  # logged in: sent on to the page
    assert status == 302 and "/login" not in dict(headers)["Location"]
    # a made-up session cookie does not open anything
    forged = "; ".join(f"{k}=forged" for k in session)
    assert refused(*request(port, "GET", KERNEL, {"Cookie": forged})[:2])
