"""`matseg validate` / `matseg plan` on the shipped profiles, in-process and as the real console script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from _profile_helpers import write_profile

from matseg_nb.cli import main
from matseg_nb.profiles import Job

JOB_ID = re.compile(r"^nasa-(super1|ebc1)__(resnet18|tu-seresnext26d_32x4d)__(Unet|DeepLabV3|DeepLabV3Plus)__s0__[0-9a-f]{8}$")


def _matseg() -> str:
    script = Path(sys.executable).parent / "matseg"
    return str(script) if script.exists() else shutil.which("matseg") or "matseg"


def _plan_ids(capsys, repo_root) -> list[str]:
    assert main(["plan", str(repo_root / "profiles" / "demo-cpu.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["#", "job_id", "dataset", "encoder", "decoder", "seed"]
    assert out[-1] == "12 jobs"
    return [line.split()[1] for line in out[1:-1]]


def test_plan_demo_lists_12_stable_jobs(capsys, repo_root):
    ids = _plan_ids(capsys, repo_root)
    assert len(ids) == len(set(ids)) == 12
    assert all(JOB_ID.match(i) for i in ids), ids
    # the demo lists nasa-ebc1 first (its 1024 px jobs are the long ones: they start first on the two workers)
    assert ids[0].startswith("nasa-ebc1__resnet18__Unet__") and ids[-1].startswith(
        "nasa-super1__tu-seresnext26d_32x4d__DeepLabV3Plus__")
    assert _plan_ids(capsys, repo_root) == ids


def test_plan_json_is_a_list_of_job_dicts(capsys, repo_root):
    assert main(["plan", str(repo_root / "profiles" / "demo-cpu.json"), "--json"]) == 0
    jobs = [Job.from_dict(d) for d in json.loads(capsys.readouterr().out)]
    assert len(jobs) == 12
    assert {j.dataset for j in jobs} == {"nasa-super1", "nasa-ebc1"}
    assert all(j.encoder_weights == "none" and j.training.crop_size == 128 for j in jobs)


def test_validate_prints_a_one_screen_summary(capsys, repo_root):
    assert main(["validate", str(repo_root / "profiles" / "demo-cpu.json")]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 30
    for needle in ("nasa-super1", "nasa-ebc1", "SEM", "metals", "ceramics", "= 12 jobs", "batch 4",
                   "crop 128 px", "early stop 20 on val_iou", "weights: none", "Unet, DeepLabV3, DeepLabV3Plus"):
        assert needle in out, needle


def test_console_script_ids_are_stable_across_processes(repo_root, capsys):
    in_process = _plan_ids(capsys, repo_root)
    runs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([_matseg(), "plan", "profiles/demo-cpu.json", "--json"], cwd=repo_root, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append([d["job_id"] for d in json.loads(proc.stdout)])
    assert runs[0] == runs[1] == in_process


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    path = write_profile(tmp_path, '{"name": "x",, }')
    proc = subprocess.run([_matseg(), "validate", str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        f"error: {path}: line 1, column 14: expected valid JSON (Expecting property name enclosed in double "
        "quotes), found ', }'"
    )
