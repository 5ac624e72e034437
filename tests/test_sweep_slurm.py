"""The SLURMCluster job script generated from a profile's execution.slurm section (nothing is submitted)."""

from __future__ import annotations

from _sweep_helpers import tiny_profile_dict, write_profile

from matseg_nb.cli import main
from matseg_nb.profiles import profile_from_dict
from matseg_nb.sweep import slurm_job_script
from matseg_nb.sweep.slurm import slurm_cluster_kwargs


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
    kwargs = slurm_cluster_kwargs(profile_from_dict(data))
    assert kwargs["job_extra_directives"] == [] and kwargs["queue"] == "cpu" and "account" not in kwargs
    script = slurm_job_script(profile_from_dict(data))
    assert "--gres" not in script and "#SBATCH -t 02:00:00" in script and "#SBATCH --cpus-per-task=4" in script


def test_cli_prints_the_job_script_without_submitting(tmp_path, capsys):
    profile = write_profile(tmp_path / "p.json")
    code = main(["sweep", str(profile), "--out", str(tmp_path / "o"), "--executor", "slurm", "--print-job-script"])
    assert code == 0
    assert "#SBATCH -A mat-seg" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()
