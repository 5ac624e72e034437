"""Terminal output fits 100 columns: the shared wrapper (``matseg_nb.terminal``), ``matseg qc`` (validation and
screening), the loop's log sink (profile summary, QC stage) and the sweep table. ``matseg compare`` and
``matseg segment`` have their own checks (tests/test_compare_terminal.py, tests/test_segment_batch.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from _qc_helpers import folder_dataset, tiny_run

from matseg_nb.terminal import WIDTH, echo, fit_lines, shorten_middle

QC_LINE = ("      split:test: in distribution, weak evidence (0 of 3 images flagged at alpha=0.05, batch p=0.5; "
           "calibration 3 val images, reference train)")


def _widest(text: str) -> int:
    """The widest line, each existing path in it (also a set name ``PATH@shift:strength:``) counted as 6
    columns: a path is never split, and pytest's temporary paths are longer under xdist."""
    def width(line: str) -> int:
        return len(" ".join("<path>" if "/" in w and Path(w.split("@")[0].rstrip(",.:;)")).exists() else w
                            for w in line.split(" ")))

    return max(map(width, text.splitlines()), default=0)


def test_fit_lines_wraps_sentences_keeps_words_and_short_lines():
    table = "job            status      time\nshort line"
    out = fit_lines([QC_LINE, table])
    lines = out.splitlines()
    assert len(QC_LINE) > WIDTH and max(map(len, lines)) <= WIDTH
    assert lines[-2:] == table.splitlines()  # short lines (table rows) untouched
    assert lines[1].startswith(" " * 8) and not lines[1].startswith(" " * 9)  # continuation: 2 more than its line
    assert " ".join(" ".join(lines[:-2]).split()) == " ".join(QC_LINE.split())  # no word lost or split
    assert fit_lines("x " * 80, width=40).count("\n") == 4


def test_shorten_middle_keeps_start_and_end():
    job = "nasa-super1__tu-seresnext26d_32x4d__DeepLabV3Plus__s0__a0ccc434"
    short = shorten_middle(job, 40)
    assert len(short) == 40 and short.startswith("nasa-super1__") and short.endswith("__a0ccc434") and "…" in short
    assert shorten_middle("abc", 40) == "abc"


def test_sweep_table_fits_and_says_what_it_shortened(tmp_path):
    from matseg_nb.sweep.status import format_status

    job = {"status": "failed", "duration_s": 65.0, "val_iou": 0.3, "test_iou": None}
    status = {"out_dir": str(tmp_path), "state": "done", "counts": {"complete": 0, "failed": 2, "running": 0,
                                                                    "pending": 0}, "eta_s": None,
              "jobs": [{**job, "job_id": "nasa-super1__tu-seresnext26d_32x4d__DeepLabV3Plus__s0__a0ccc434",
                        "error": "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB " * 2},
                       {**job, "job_id": "a__b__c__s0__1", "error": None}]}
    text = format_status(status)
    assert max(map(len, text.splitlines())) <= WIDTH
    assert "nasa-super1__tu-seresnext26" in text and "__s0__a0ccc434" in text and "summary.json" in text


def test_qc_cli_validation_and_screening_fit_100_columns(tmp_path, capsys):
    from matseg_nb.cli import main

    torch.set_num_threads(1)
    ds = folder_dataset(tmp_path / "ds", n_train=4, n_test=3)
    run = tiny_run(tmp_path / "run", ds)
    common = ["--extractors", "texture", "--tile", "48", "--tiles", "4"]
    assert main(["qc", str(run), "--validate", "--shift", "noise:strong", "blur:strong", "--test", f"{ds}:train",
                 "--detectors", "gmm", "ocsvm", "--out", str(tmp_path / "val"), *common]) == 0
    val = capsys.readouterr().out
    assert "decided" in val and _widest(val) <= WIDTH
    assert main(["qc", str(run), "--new", str(ds / "images" / "test"), "--shift", "noise:strong",
                 "--out", str(tmp_path / "scr"), *common]) == 0
    scr = capsys.readouterr().out
    assert "flagged" in scr and _widest(scr) <= WIDTH


def test_loop_log_sink_fits_profile_summary_and_qc_stage(capsys):
    from matseg_nb.pipeline import DemoContext, format_qc
    from matseg_nb.profiles import load_profile
    from matseg_nb.profiles.summary import summarize
    from matseg_nb.qc.dataset_qc import DatasetQC
    from matseg_nb.qc.results import ImageScreen, ScreeningResult, ShiftCheck, ValidationResult

    profile = Path(__file__).resolve().parents[1] / "profiles" / "demo-cpu.json"
    ctx = DemoContext(profile, Path("unused"))
    ctx.log(summarize(load_profile(profile)))
    screened = ScreeningResult("split:test", [ImageScreen("a", 0.5, 0.3, False, "typical")], 0.05, 0, 3,
                               "in distribution", "rank-sum", 0.5, 1.0, "train", "val", "ocsvm", 3,
                               notes=["weak evidence: no shift found, but 3 image(s) vs 3 calibration images "
                                      "detect a strong shift only 40% of the time (below 80%); " * 2],
                               batch_power=0.4, batch_evidence="weak")
    checks = [ShiftCheck(f"shift:{s}:strong", d, 1.0, 0.8, 1.0, 3, 3, "harmful", -0.2)
              for s in ("noise", "blur", "rescale") for d in ("gmm", "ocsvm")]
    val = ValidationResult("insufficient evidence", "fewer than 10 images on a side for: shift:blur:strong, "
                           "shift:noise:strong, shift:rescale:strong; 10 images per side would decide", 0.95,
                           "split:test", "train", checks, ["gmm", "ocsvm"],
                           [{"set": c.set, "support": 1.0, "alone": {"gmm": 0.5, "ocsvm": 0.6},
                             "combined": {"gmm": 1.0, "ocsvm": 1.0}} for c in checks[::2]])
    ctx.log(format_qc(DatasetQC("nasa-super1", "runs/nasa-super1__resnet18__Unet__s0__6aabd211", [screened], val,
                                {"total": 12.0})))
    out = capsys.readouterr().out
    assert "The k-NN support decided" in out and "weak evidence" in out and "nasa-super1" in out
    assert max(map(len, out.splitlines())) <= WIDTH
    echo("")  # the sink prints an empty line as one
    assert capsys.readouterr().out == "\n"
