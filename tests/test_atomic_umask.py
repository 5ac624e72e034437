"""Atomic writes honour the process umask (0o666 & ~umask), like ``open(path, "w")``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from matseg_nb.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, current_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_atomic_writes_get_umask_mode(tmp_path, umask):
    expected = 0o666 & ~umask
    assert current_umask() == umask
    paths = [atomic_write_bytes(tmp_path / "a.bin", b"x"), atomic_write_text(tmp_path / "sub" / "b.txt", "y"),
             atomic_write_json(tmp_path / "c.json", {"k": 1})]
    plain = tmp_path / "plain.txt"
    plain.write_text("z")
    assert mode(plain) == expected
    for path in paths:
        assert mode(path) == expected, f"{path.name}: {oct(mode(path))} != {oct(expected)}"
    # a replaced file takes the mode of the new write, and no temp file is left behind
    atomic_write_text(tmp_path / "a.bin", "again")
    assert mode(tmp_path / "a.bin") == expected
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("mask,expected", [("022", 0o644), ("002", 0o664)])
def test_report_and_run_folder_files_are_group_readable(tmp_path, mask, expected):
    """Run folders (``matseg_nb.runs.Run`` writers) and a real report build, in a child under the umask."""
    code = (
        "import sys; from pathlib import Path;"
        "from _report_helpers import make_fake_loop; from matseg_nb.report import build_report;"
        "out = Path(sys.argv[1]); sweep = make_fake_loop(out);"
        "build_report(sweep, out / 'report.html')"
    )
    tests_dir = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests_dir), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(["sh", "-c", f'umask {mask} && exec "$0" -c "$1" "$2"', sys.executable, code,
                    str(tmp_path)], check=True, cwd=tests_dir.parent, timeout=300, env=env)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in written)
    assert any(p.name == "report.json" for p in written)
    assert any(p.name == "metrics.json" for p in written)
    for path in written:
        assert mode(path) == expected, f"{path.relative_to(tmp_path)}: {oct(mode(path))} != {oct(expected)}"
