"""The SLURMCluster job script generated from a profile's execution.slurm section (nothing is submitted).

The real-scheduler tests are in test_sweep_slurm_real.py."""

from __future__ import annotations

import pytest
from _sweep_helpers import tiny_profile_dict, write_profile

from matseg_nb.cli import main
from matseg_nb.errors import UserError
from matseg_nb.profiles import profile_from_dict
from matseg_nb.profiles.schema import SlurmConfig
from matseg_nb.sweep import slurm_job_script
from matseg_nb.sweep.slurm import slurm_cluster_kwargs, slurm_config


def test_job_script_carries_the_profile_resources_and_the_worker_command():
    script = slurm_job_script(profile_from_dict(tiny_profile_dict()))
    lines = script.splitlines()
    for directive in ("#SBATCH -p gpu-a100", "#SBATCH -A mat-seg", "#SBATCH -t 03:30:00",
                      "#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:2", "#SBATCH --constraint=a100"):
        assert directive in lines, (directive, script)
    mem = [line for line in lines if line.startswith("#SBATCH --mem=")]
    assert mem == ["#SBATCH --mem=30G"]  # 32 GB = 29.8 GiB, rounded by dask-jobqueue
    worker = [line for line in lines if "distributed.cli.dask_worker" in line]
    assert len(worker) == 1 and "--nthreads 1" in worker[0]  # one training job per Slurm job


def test_no_gpus_means_no_gres_and_defaults_fill_in():
    data = tiny_profile_dict()
    data["execution"]["slurm"] = {"partition": "cpu"}
    kwargs = slurm_cluster_kwargs(slurm_config(profile_from_dict(data)))
    assert kwargs["job_extra_directives"] == [] and kwargs["queue"] == "cpu" and "account" not in kwargs
    script = slurm_job_script(profile_from_dict(data))
    defaults = SlurmConfig()  # the schema is the only source of defaults
    assert "--gres" not in script and f"#SBATCH -t {defaults.walltime}" in script
    assert f"#SBATCH --cpus-per-task={defaults.cores}" in script and (defaults.cores, defaults.walltime) == (4, "02:00:00")


def test_every_setting_reaches_the_job_script(tmp_path):
    data = tiny_profile_dict()
    data["execution"]["slurm"] = {"partition": "gpu", "account": "matsci", "walltime": "1-00:30:00", "cores": 3,
                                  "memory": "4GB", "gpus": 1, "constraint": "a100", "qos": "short",
                                  "extra_directives": ["--exclusive"], "python": "/opt/env/bin/python",
                                  "setup": ["module load cuda/12.1", "conda activate matseg"]}
    lines = slurm_job_script(profile_from_dict(data), tmp_path / "sweep").splitlines()
    for line in ("#SBATCH -p gpu", "#SBATCH -A matsci", "#SBATCH -t 1-00:30:00", "#SBATCH --cpus-per-task=3",
                 "#SBATCH --mem=4G", "#SBATCH --gres=gpu:1", "#SBATCH --constraint=a100", "#SBATCH --qos=short",
                 "#SBATCH --exclusive", f"#SBATCH -o {tmp_path / 'sweep'}/.slurm/logs/matseg-sweep-%J.out",
                 "module load cuda/12.1", "conda activate matseg"):
        assert line in lines, (line, lines)
    setup_at, worker_at = lines.index("conda activate matseg"), next(
        i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line)
    assert setup_at < worker_at and lines[worker_at].startswith("/opt/env/bin/python -m distributed.cli.dask_worker")


@pytest.mark.parametrize("walltime", ["90 min", "2:00", "01:75:00", "1-2"])
def test_a_walltime_in_the_wrong_format_is_one_line_from_the_profile_check(walltime):
    data = tiny_profile_dict()
    data["execution"]["slurm"]["walltime"] = walltime
    with pytest.raises(UserError) as info:
        profile_from_dict(data)
    message = str(info.value)
    assert "execution.slurm.walltime: expected a walltime HH:MM:SS or D-HH:MM:SS" in message
    assert repr(walltime) in message and "\n" not in message


def test_cli_prints_the_job_script_without_submitting(tmp_path, capsys):
    profile = write_profile(tmp_path / "p.json")
    code = main(["sweep", str(profile), "--out", str(tmp_path / "o"), "--executor", "slurm", "--print-job-script"])
    assert code == 0
    assert "#SBATCH -A mat-seg" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()
