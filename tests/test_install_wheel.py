"""A non-editable install (the built wheel) in a fresh venv, run from another folder, can validate, plan
and sweep (one tiny job): the training notebook, manifests and the paper prior come from package data.

Offline and fast: the wheel is built without build isolation, installed with ``--no-deps`` into a venv
whose site-packages also see this checkout's ``.venv`` dependencies through a ``.pth`` file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from _sweep_helpers import tiny_profile_dict

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _installed_wheel(tmp_path: Path) -> tuple[Path, Path, Path, dict]:
    """(python, site-packages, a work folder outside the checkout, env) of the built wheel installed with
    ``--no-deps`` into a fresh venv that sees this checkout's dependencies."""
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(REPO)], cwd=tmp_path)
    (wheel,) = dist.glob("matseg_nb-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    (site / "_checkout_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               MATSEG_DATA_MIRROR=os.environ.get("MATSEG_DATA_MIRROR", "/work/shared/data"))
    where = _run([str(py), "-c", "import matseg_nb; print(matseg_nb.__file__)"], cwd=work, env=env).stdout
    assert str(site) in where and str(REPO) not in where  # the installed copy, not the checkout
    return py, site, work, env


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_validates_plans_and_sweeps(tmp_path):
    py, _site, work, env = _installed_wheel(tmp_path)
    profile = work / "tiny.json"
    profile.write_text(json.dumps(tiny_profile_dict(seeds=(0,))))
    _run([str(py), "-m", "matseg_nb.cli", "validate", str(profile)], cwd=work, env=env)
    plan = _run([str(py), "-m", "matseg_nb.cli", "plan", str(profile)], cwd=work, env=env).stdout
    assert "1 job" in plan or "= 1" in plan, plan
    _run([str(py), "-m", "matseg_nb.cli", "sweep", str(profile), "--out", str(work / "sweep"), "--no-progress"],
         cwd=work, env=env, timeout=600)
    from matseg_nb.runs import Sweep

    (job,) = Sweep.open(work / "sweep").jobs()
    assert job.status == "complete", job.error
    assert job.run.metrics() is not None and job.run.predictions()


@pytest.mark.slow
def test_wheel_serves_the_dashboard_app(tmp_path):
    """``matseg dashboard`` from a non-editable install serves the app of top-level ``widgets/`` (shipped as
    package data): Voilà renders its widget tree."""
    import http.client
    import re
    import time

    from _dashboard_helpers import free_port, stop_server

    py, site, work, env = _installed_wheel(tmp_path)
    shipped = site / "matseg_nb" / "resources" / "apps" / "dashboard.ipynb"
    assert shipped.read_bytes() == (REPO / "widgets" / "dashboard.ipynb").read_bytes()
    dry = _run([str(py), "-m", "matseg_nb.cli", "dashboard", "--dry-run", "--workspace", str(work / "ws")],
               cwd=work, env=env).stdout
    assert str(shipped) in dry, dry
    port = free_port()
    env = {**env, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONUNBUFFERED": "1",
           # the fresh venv borrows this venv's packages through a .pth file, not their share/jupyter data
           # (Voila's templates), which a real install puts under its own prefix
           "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}
    env.pop("JUPYTER_TOKEN", None)
    log_path = tmp_path / "dashboard.log"
    with open(log_path, "wb") as log:  # a file, not a pipe: Voila's log must never block the server
        proc = subprocess.Popen([str(py), "-m", "matseg_nb.cli", "dashboard", "--port", str(port), "--workspace",
                                 str(work / "ws")], cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        token, deadline = None, time.monotonic() + 180
        while token is None and time.monotonic() < deadline:
            m = re.search(r"\?token=([0-9a-f]{48})", log_path.read_text(errors="replace"))
            token = m.group(1) if m else None
            assert proc.poll() is None, log_path.read_text()
            time.sleep(1)
        assert token, log_path.read_text()
        status, body = None, ""
        while status is None and time.monotonic() < deadline + 300:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                conn.request("GET", f"/?token={token}")
                resp = conn.getresponse()
                status, body = resp.status, resp.read().decode("utf-8", "replace")
                conn.close()
            except OSError:
                time.sleep(1)
        assert status == 200, f"{status} {body[-1000:]}\n{log_path.read_text()[-3000:]}"
        assert "application/vnd.jupyter.widget-view+json" in body and "Traceback" not in body, body[-2000:]
    finally:
        stop_server(proc)
