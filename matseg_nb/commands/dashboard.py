"""``matseg dashboard [--port P] [--workspace DIR]``: serve the Voilà dashboard, locked to its owner.

Access control is jupyter_server's own (Voilà 0.5 serves through jupyter_server 2's
``PasswordIdentityProvider``): by default a random token, passed to Voilà in ``JUPYTER_TOKEN`` (the
environment of a process is readable by its owner only, the command line by everyone) and printed in
the URL as ``?token=...``; or the password hash stored by ``matseg dashboard --set-password``. Every
page, the kernel API and the kernel websocket (through which the sweep, QC and explain buttons act)
refuse requests without it. ``--no-token`` switches access control off, with a loud warning, and only
on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json, read_json_object


def app_notebook(name: str = "dashboard") -> Path:
    """The Voilà app ``<name>.ipynb``: the checkout's top-level ``widgets/<name>.ipynb`` when this package runs
    from a checkout, else the package-data copy ``matseg_nb/resources/apps/<name>.ipynb`` (the same file:
    the top-level one links to it), so a non-editable install serves the same app."""
    from importlib import resources

    checkout = Path(__file__).resolve().parents[2] / "widgets" / f"{name}.ipynb"
    if checkout.is_file():
        return checkout
    shipped = Path(str(resources.files("matseg_nb") / "resources" / "apps" / f"{name}.ipynb"))
    if not shipped.is_file():
        raise UserError(f"app {name}: expected {shipped} (package data), found nothing; reinstall matseg-nb")
    return shipped

WORKSPACE_ENV = "MATSEG_WORKSPACE"
TOKEN_ENV = "JUPYTER_TOKEN"
LOOPBACK = "127.0.0.1"
NO_TOKEN_WARNING = (
    "WARNING: --no-token: the dashboard has NO access control. Every user of this machine can open\n"
    "WARNING: http://127.0.0.1:{port}/, start sweeps and read every result in the workspace as you.\n"
    "WARNING: Use this only on a machine nobody else logs in to."
)


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/matseg/dashboard.json`` (``~/.config/...``): outside any workspace."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "matseg" / "dashboard.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboard", help="serve the Voila dashboard (Configure/Run/Compare/Quality/Explain)",
                              description="Serves widgets/dashboard.ipynb (package data matseg_nb/resources/apps/) with Voila, bound to 127.0.0.1 "
                              "and locked by a random token (printed in the URL) or by the password set with "
                              "--set-password. Every file the dashboard reads or writes stays inside --workspace.")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument("--workspace", default="workspace", help="workspace folder (created; default ./workspace)")
    p.add_argument("--ip", default=LOOPBACK, help="address to bind (default 127.0.0.1: this machine only; any "
                   "other address needs the token or a password)")
    p.add_argument("--config", default=None, help="dashboard config JSON with 'password_hash' (default "
                   "$XDG_CONFIG_HOME/matseg/dashboard.json); when it has a hash, the page asks for the password "
                   "instead of a token")
    p.add_argument("--set-password", action="store_true", help="ask for a password, store its argon2 hash in the "
                   "config and exit")
    p.add_argument("--no-token", action="store_true", help="no access control (loud warning; 127.0.0.1 only)")
    p.add_argument("--dry-run", action="store_true", help="print the voila command instead of running it")
    p.set_defaults(func=handler)


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for anything else (incl. ``0.0.0.0``, ``""``)."""
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def read_password_hash(config: Path) -> str | None:
    """The ``password_hash`` of the dashboard config, None when the file does not exist."""
    data = read_json_object(config)
    if data is None:
        return None
    value = data.get("password_hash")
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("argon2:", "sha1:")):
        raise UserError(f"{config}: password_hash: expected a hash from 'matseg dashboard --set-password' "
                        f"(argon2:...), found {str(value)[:20]!r}")
    return value


def store_password_hash(config: Path, password: str) -> Path:
    """Hash ``password`` with jupyter_server's ``passwd`` (argon2) and store it in ``config`` (mode 0600)."""
    from jupyter_server.auth.security import passwd

    if len(password) < 8:
        raise UserError(f"password: expected at least 8 characters, found {len(password)}")
    data: dict = {}
    if config.exists():
        found = read_json(config)
        data = found if isinstance(found, dict) else {}
    data["password_hash"] = passwd(password)
    config.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(config, 0o600)  # a secret: owner only, whatever the umask
    return config


def voila_command(port: int, ip: str = LOOPBACK, *, auth: str = "token", password_hash: str | None = None
                  ) -> list[str]:
    """The Voilà argument list (no shell) for the dashboard notebook.

    ``auth``: ``token`` (Voilà's ``--token`` flag; the token itself goes in ``JUPYTER_TOKEN``, see
    :func:`dashboard_env`), ``password`` (``password_hash`` required) or ``none``.
    """
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    base = [voila] if voila else [sys.executable, "-m", "voila"]
    cmd = [*base, str(app_notebook("dashboard")), "--no-browser", f"--Voila.ip={ip}", f"--port={port}"]
    if auth == "token":
        cmd.append("--token")
    elif auth == "password":
        if not password_hash:
            raise UserError("password: expected a password hash, found none")
        cmd.append(f"--PasswordIdentityProvider.hashed_password={password_hash}")
    elif auth != "none":
        raise ValueError(f"auth: expected token, password or none, found {auth!r}")
    return cmd


def dashboard_env(workspace: Path, token: str | None) -> dict[str, str]:
    """Environment for Voilà: the workspace, and the token when token auth is on (never on the command line)."""
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, "JUPYTER_TOKEN_FILE")}
    env[WORKSPACE_ENV] = str(workspace)
    if token:
        env[TOKEN_ENV] = token
    return env


def new_token() -> str:
    """48 hex characters of ``secrets`` randomness (as Jupyter's generated tokens)."""
    return secrets.token_hex(24)


def handler(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UserError(f"--port: expected 1..65535, found {args.port}")
    config = Path(args.config).expanduser() if args.config else default_config_path()
    if args.set_password:
        password = getpass.getpass("dashboard password: ")
        if password != getpass.getpass("again: "):
            raise UserError("password: expected the same password twice, found two different ones")
        print(f"stored the password hash in {store_password_hash(config, password)}")
        return 0
    workspace = Path(args.workspace).expanduser().resolve()
    if workspace.exists() and not workspace.is_dir():
        raise UserError(f"--workspace {args.workspace}: expected a folder, found a file")
    password_hash = None if args.no_token else read_password_hash(config)
    if args.no_token and not is_loopback(args.ip):
        raise UserError(f"--no-token with --ip {args.ip}: expected 127.0.0.1 (a dashboard without a token is "
                        "only served to this machine), found another address")
    workspace.mkdir(parents=True, exist_ok=True)
    auth = "none" if args.no_token else "password" if password_hash else "token"
    token = new_token() if auth == "token" else None
    cmd = voila_command(args.port, args.ip, auth=auth, password_hash=password_hash)
    env = dashboard_env(workspace, token)
    if args.dry_run:
        shown = [c if not c.startswith("--PasswordIdentityProvider") else c.split("=")[0] + "=<hash>" for c in cmd]
        print(f"{WORKSPACE_ENV}={workspace} " + (f"{TOKEN_ENV}=<token> " if token else "") + " ".join(shown))
        return 0
    url = f"http://{args.ip}:{args.port}/"
    if auth == "none":
        print(NO_TOKEN_WARNING.format(port=args.port), file=sys.stderr, flush=True)
    elif auth == "password":
        print(f"dashboard: {url} asks for the password stored in {config}", flush=True)
    else:
        url += f"?token={token}"
    print(f"dashboard: {url}  (workspace {workspace}; Ctrl-C stops the server, not running sweeps)", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
