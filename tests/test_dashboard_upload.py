"""Dashboard "Add images": uploaded PNG pairs become a checked workspace dataset; bad uploads are named
and change nothing in the workspace."""

from __future__ import annotations

import io
import json
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from matseg_nb.dashboard.uploads import UploadedFile, add_uploaded_dataset, list_uploaded_datasets
from matseg_nb.errors import UserError


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def pair(i: int, size: int = 48, mask_size: int | None = None) -> tuple[UploadedFile, UploadedFile]:
    rng = np.random.default_rng(i)
    img = rng.integers(0, 255, (size, size), dtype=np.uint8)
    ms = mask_size or size
    mask = np.zeros((ms, ms), np.uint8)
    mask[ms // 4: ms // 2, ms // 4: ms // 2] = 255
    return UploadedFile(f"img{i}.png", png(img)), UploadedFile(f"img{i}_mask.png", png(mask))


def good_upload(n: int = 5):
    pairs = [pair(i) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def snapshot(ws):
    return {str(p.relative_to(ws)): p.read_bytes() for p in ws.rglob("*") if p.is_file()}


def test_good_upload_becomes_a_checked_dataset(tmp_path):
    images, masks = good_upload()
    result = add_uploaded_dataset(tmp_path, "grains", images, masks)
    assert result.ok, result.problems
    assert result.folder == (tmp_path / "datasets" / "grains").resolve()
    assert sorted(p.name for p in (result.folder / "images").iterdir()) == [f"img{i}.png" for i in range(5)]
    assert sum(s["pairs"] for s in result.summary["splits"].values()) == 5
    assert [m["class"] for m in result.class_mapping] == ["background", "foreground"]
    assert [m["mask value"] for m in result.class_mapping] == ["0", "255"]
    assert result.preview_png is not None and result.preview_png.stat().st_size > 0
    assert list_uploaded_datasets(tmp_path) == [result.folder]
    assert not list((tmp_path / "datasets").glob(".upload-*"))
    # the same check as the CLI passes on the folder, and a profile can use it
    from matseg_nb.cli import main

    assert main(["data", "check", str(result.folder)]) == 0


@pytest.mark.parametrize("case,expected", [
    ("non_image", "notes.txt: expected an image"),
    ("no_mask", "image img9.png: expected a mask"),
    ("wrong_size", "expected the image's shape (48, 48), found (40, 40)"),
    ("empty", "img3.png: expected image data, found an empty (0-byte) file"),
    ("duplicate", "img1.png: expected each name once, found it 2 times"),
    ("undecodable", "img2.png"),
])
def test_bad_uploads_are_named_and_change_nothing(tmp_path, case, expected):
    images, masks = good_upload()
    first = add_uploaded_dataset(tmp_path, "existing", images, masks, preview=False)
    assert first.ok
    before = snapshot(tmp_path)
    images, masks = good_upload()
    if case == "non_image":
        images.append(UploadedFile("notes.txt", b"hello"))
    elif case == "no_mask":
        images.append(pair(9)[0])
    elif case == "wrong_size":
        masks[1] = pair(1, mask_size=40)[1]
    elif case == "empty":
        images[3] = UploadedFile("img3.png", b"")
    elif case == "duplicate":
        images.append(images[1])
    elif case == "undecodable":
        images[2] = UploadedFile("img2.png", b"not a png at all")
    result = add_uploaded_dataset(tmp_path, "second", images, masks, preview=False)
    assert not result.ok
    assert any(expected in p for p in result.problems), result.problems
    assert snapshot(tmp_path) == before  # nothing written, nothing lost
    assert not (tmp_path / "datasets" / "second").exists()


def test_several_problems_are_named_at_once_and_existing_name_refused(tmp_path):
    images, masks = good_upload()
    assert add_uploaded_dataset(tmp_path, "existing", images, masks, preview=False).ok
    before = snapshot(tmp_path)
    clash = add_uploaded_dataset(tmp_path, "existing", *good_upload(3), preview=False)
    assert not clash.ok and "already in the workspace" in clash.problems[0]
    images, masks = good_upload()
    images += [UploadedFile("a.txt", b"x"), UploadedFile("z.png", b"")]
    masks[0] = pair(0, mask_size=40)[1]
    masks.append(UploadedFile("orphan_mask.png", pair(7)[1].content))
    bad = add_uploaded_dataset(tmp_path, "other", images, masks, preview=False)
    text = "\n".join(bad.problems)
    for name in ("a.txt", "z.png", "orphan_mask.png", "img0_mask.png"):
        assert name in text, text
    assert snapshot(tmp_path) == before
    assert not add_uploaded_dataset(tmp_path, "../escape", *good_upload(2)).ok
    assert not add_uploaded_dataset(tmp_path, "ok", [UploadedFile("../x.png", b"1")], masks).ok


def test_uploaded_dataset_is_offered_to_the_profile_editor(tmp_path):
    from matseg_nb.widgets.dashboard_app import DashboardState

    st = DashboardState(tmp_path / "ws")
    images, masks = good_upload()
    result = st.add_images("grains", images, masks)
    assert result.ok, result.problems
    assert str(result.folder) in st.dataset_choices()
    prof = json.loads((st.workspace / "profiles" / "starter.json").read_text())
    assert prof["model"]["encoders"] == ["resnet18"] and prof["training"]["lr"] == 1e-3


def wait_state(st, kind, run, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = st.analysis_state(kind, run)
        if state and state["state"] != "running":
            return state
        time.sleep(0.5)
    raise AssertionError(f"{kind} still running after {timeout} s: {st.analysis_state(kind, run)}")


def test_analyses_run_in_a_detached_process_and_are_found_again(tmp_path):
    """Compare runs in its own session; a fresh app (a reloaded page) finds it running/done and shows it."""
    from _report_helpers import make_fake_loop

    from matseg_nb.widgets.dashboard_app import DashboardApp, DashboardState

    st = DashboardState(tmp_path / "ws")
    run = st.workspace / "runs" / "demo"
    make_fake_loop(run)
    for sub in ("compare", "qc", "explain"):
        shutil.rmtree(run / sub)
    state = st.start_analysis("compare", run)
    assert state["state"] == "running"
    assert os.getsid(state["pid"]) == state["pid"] != os.getsid(0)  # own session: outlives the page's kernel
    with pytest.raises(UserError, match="found one running"):
        st.start_analysis("compare", run)
    del st  # the page goes away; the process does not
    again = DashboardState(tmp_path / "ws")
    done = wait_state(again, "compare", run)
    assert done["state"] == "done", done
    assert (run / "compare").is_dir() and any((run / "compare").iterdir())
    app = DashboardApp(tmp_path / "ws")
    app.run.attach("runs/demo")
    assert "done" in app.compare.message.value and app.compare.output.children
    # QC of a run folder without a model fails in the child; the page shows the error line
    app.state.start_analysis("qc", run)
    failed = wait_state(app.state, "qc", run)
    assert failed["state"] == "failed" and failed["error"]
    app.quality.follow()
    assert "failed" in app.quality.message.value


def test_data_check_and_tiled_prediction_show_progress(tmp_path, capsys):
    import torch

    from matseg_nb.cli import main
    from matseg_nb.models.tiling import predict_tiled

    result = add_uploaded_dataset(tmp_path, "grains", *good_upload(), preview=False)
    capsys.readouterr()
    assert main(["data", "check", str(result.folder)]) == 0
    err = capsys.readouterr().err
    assert "data check" in err and "/5 " in err
    model = torch.nn.Conv2d(1, 2, 3, padding=1).eval()
    probs = predict_tiled(model, torch.rand(1, 200, 200), 2, tile=64, overlap=16, batch_size=2, progress=True)
    assert probs.shape == (2, 200, 200)
    err = capsys.readouterr().err
    assert "tiles" in err and "/25 " in err  # 5 x 5 overlapping tiles
    predict_tiled(model, torch.rand(1, 200, 200), 2, tile=64, overlap=16, batch_size=2)
    assert "tiles" not in capsys.readouterr().err  # off by default (validation calls it per image)
