"""'Say what decides': the support indicator alone, each detector alone and the combined key, from the same crops."""

from __future__ import annotations

import json

from _qc_helpers import folder_dataset, tiny_run

from matseg_nb.cli import main
from matseg_nb.qc.results import ShiftCheck, ValidationResult


def _result(gmm: float, ocsvm: float, support: float) -> ValidationResult:
    checks = [ShiftCheck("shift:noise:strong", d, a, a - 0.1, min(1.0, a + 0.1), 5, 5, "harmful", -0.2)
              for d, a in (("gmm", gmm), ("ocsvm", ocsvm))]
    decides = [{"set": "shift:noise:strong", "support": support, "alone": {"gmm": 0.62, "ocsvm": 0.71},
                "combined": {"gmm": gmm, "ocsvm": ocsvm}, "n_crops": {}}]
    return ValidationResult("not ready", "x", 0.9, "split:test", "train", checks, ["gmm", "ocsvm"], decides)


def test_sentence_names_the_support_when_detectors_tie_and_detectors_when_they_differ():
    tied = _result(0.96, 0.96, 0.96)
    assert tied.what_decided().startswith("The k-NN support decided") and "GMM and OCSVM tie" in tied.what_decided()
    assert "GMM alone AUROC 0.620" in tied.what_decided()
    text = tied.summary()
    assert "gmm=ocsvm" in text and sum(ln.startswith("  shift:") for ln in text.splitlines()) == 1 and "shown once" in text
    tied_off_support = _result(0.97, 0.97, 0.90)
    assert tied_off_support.what_decided().startswith("The k-NN support and the distance to it decided")
    differ = _result(0.97, 0.80, 0.90)
    assert differ.what_decided().startswith("The detectors decided on 1 of 1 sets (shift:noise:strong)")
    assert sum(ln.startswith("  shift:noise:strong") for ln in differ.summary().splitlines()) == 2  # rows stay apart
    assert ValidationResult.from_json(tied.to_json()).what_decided() == tied.what_decided()


def test_validate_writes_three_aurocs_from_the_same_crops_and_prints_the_sentence(tmp_path, capsys):
    ds = folder_dataset(tmp_path / "ds", n_train=4, n_test=4)
    run = tiny_run(tmp_path / "run", ds)
    rc = main(["qc", str(run), "--validate", "--shift", "noise:strong", "--out", str(tmp_path / "val"),
               "--extractors", "texture", "--tile", "48", "--tiles", "6", "--detectors", "gmm", "ocsvm"])
    assert rc == 0
    q = json.loads((tmp_path / "val" / "qc.json").read_text())
    (row,) = q["validation"]["decides"]
    assert set(row["combined"]) == set(row["alone"]) == {"gmm", "ocsvm"} and row["support"] is not None
    counts = {tuple(v) for v in row["n_crops"].values()}
    assert len(row["n_crops"]) == 5 and counts == {(4 * 6, 4 * 6)}  # every AUROC ranked the same 24 + 24 crops
    checks = {c["detector"]: c["auroc"] for c in q["validation"]["checks"]}
    assert row["combined"] == checks  # the combined key is the AUROC the validation table reports
    assert q["what_decided"] == ValidationResult.from_json(q["validation"]).what_decided()
    printed = " ".join(capsys.readouterr().out.split())  # wrapped to 100 columns: compare word by word
    assert q["what_decided"].startswith("The ") and " ".join(q["what_decided"].split()) in printed
    print(q["what_decided"])
