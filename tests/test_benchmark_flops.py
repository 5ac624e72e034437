"""The heatmap pairs benchmark's FLOP counting (benchmarks/flops.py) and its generated verdicts, on cases with
a known answer (no timing is asserted)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn


class _Parts(nn.Module):
    """A model whose FLOPs are countable by hand: encoder 3x3 conv 1->4, decoder 3x3 conv 4->4, head 1x1 4->2
    (all padding "same"): per pixel 2 x (36 + 144 + 8) = 376 FLOPs (2 x multiply-adds)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.decoder = nn.Conv2d(4, 4, 3, padding=1)
        self.segmentation_head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(torch.relu(self.decoder(torch.relu(self.encoder(x)))))


def test_count_flops_equals_the_hand_count_per_part_and_splits_at_the_mark():
    from benchmarks.flops import count_flops, mark

    m = _Parts().eval()
    x = torch.rand(2, 1, 16, 20)
    px = 2 * 16 * 20
    foreign = torch.rand(3, 1, 3, 3)  # not a parameter of m: 'other'

    def run():
        with torch.inference_mode():
            m(x)
            mark()
            m(x[:1])
            F.conv2d(x, foreign, padding=1)

    count, _ = count_flops(run, m)
    enc, dec, head, other = 2 * 36 * px, 2 * 144 * px, 2 * 8 * px, 2 * 27 * px
    assert count.parts == {"encoder": 1.5 * enc, "decoder": 1.5 * dec, "head": 1.5 * head, "other": other}
    assert count.total == 1.5 * (enc + dec + head) + other
    assert count.after_mark == 0.5 * (enc + dec + head) + other
    assert count.parts_after_mark["encoder"] == 0.5 * enc
    assert count.uncounted == 0


def test_part_names_skip_wrapper_prefixes():
    from benchmarks.flops import part_of

    assert part_of("inner.encoder.layer1.0.conv1.weight") == "encoder"
    assert part_of("model.decoder.blocks.0.conv1.0.weight") == "decoder"
    assert part_of("segmentation_head.0.weight") == "head"
    assert part_of("dummy") == "other"


def _image_and_lines(size: int):
    from benchmarks.heatmap import make_inputs

    return make_inputs(size, a_kind="lines")


def test_share_is_one_without_shortcuts():
    """A model with no exact shortcut runs a whole pass per location: share 1 exactly (FLOPs are linear in B)."""
    from benchmarks.heatmap_pairs import location_flops, whole_pass
    from matseg_nb.explain import ProbFn

    m = _Parts().eval()
    img, a = _image_and_lines(64)
    passes = whole_pass(m, 64)
    whole = passes["ours_flops"]
    assert whole.total == passes["flops"].total == 376 * 64 * 64
    out = location_flops(ProbFn(m), img, a, 16, 16, [(0, 0), (1, 2), (3, 3)], whole)
    assert out["flop_share"] == pytest.approx(1.0, abs=1e-12)
    assert out["flop_share_encoder"] == pytest.approx(72 / 376)  # 2 x 36 of the 376 FLOPs per pixel
    assert out["heatmap"].valid.sum() == 3


def test_share_whole_image_window_is_a_whole_pass_and_a_far_corner_window_is_not():
    """Tiny smp UNet (incremental encoder, box decoder): a window covering the image recomputes a whole pass
    of the same function (share >= 1 - 1e-3, A spanning the image: the whole decoder runs); a 16 px window
    at the far corner from a small box A at the top-left corner of a 128 px image recomputes a small part."""
    from _explain_helpers import tiny_model

    from benchmarks.heatmap_pairs import location_flops, whole_pass
    from matseg_nb.explain import ProbFn

    model = tiny_model("Unet")
    img, lines = _image_and_lines(128)
    passes = whole_pass(model, 128)
    whole = passes["ours_flops"]
    assert 0.3 < whole.total / passes["flops"].total <= 1.0  # exact rewrites (e.g. polyphase) save FLOPs
    full = location_flops(ProbFn(model), img, lines, 128, 128, [(0, 0)], whole)
    assert full["flop_share"] >= 1.0 - 1e-3
    corner = np.zeros((128, 128), dtype=bool)
    corner[:16, :16] = True
    far = location_flops(ProbFn(model), img, corner, 16, 16, [(7, 7)], whole)
    assert 0.0 <= far["flop_share"] < 0.2
    near = location_flops(ProbFn(model), img, corner, 16, 16, [(0, 0)], whole)
    assert far["flop_share"] < near["flop_share"] < 1.0  # the box decoder computes Z on A's box only


def test_spread_sample_runs_of_adjacent_locations_over_rows_and_columns():
    from benchmarks.heatmap_pairs import spread_sample

    s = spread_sample(32, 32, 6)
    assert len(s) == 24 and s == sorted(s)
    rows = sorted({i for i, _ in s})
    assert len(rows) == 6 and rows[-1] - rows[0] >= 16  # spread, one run per row band
    for i in rows:
        cols = [j for r, j in s if r == i]
        assert cols == list(range(cols[0], cols[0] + 4)) and cols[-1] < 32
    assert spread_sample(32, 32, 6) == s  # seeded


def _row(ratio: float, share: float, fixed_s: float, a_kind: str = "box") -> dict:
    """A pairs row: Captum 1 s per location over 100 locations; ours ``100 / ratio`` s in all."""
    t = 100.0 / ratio
    return {"model": "M", "a_kind": a_kind, "ratio": ratio, "ours_s": t, "alt_s": 100.0, "n_locations": 100,
            "ours_fixed_s": fixed_s, "captum_per_location_s": 1.0, "flop_share": share, "flop_bound": 1 / share,
            "flop_share_encoder": 0.8 * share, "flop_share_decoder": 0.2 * share, "flop_share_head": 0.0,
            "of_bound": ratio * share, "alternative": "captum Occlusion ppe=1 (best of [1, 4])", "size": 64,
            "max_abs_diff": 1e-6, "h_max": 1.0, "shortcuts": []}


def test_verdicts_name_the_cause_from_the_numbers():
    from benchmarks.heatmap_pairs import pairs_markdown, time_split, verdict

    assert verdict(_row(12.0, 0.05, 1.0)) == ""  # at the goal: not named
    inherent = _row(2.0, 0.4, 1.0)  # bound 2.5x < 10x
    assert "Inherent" in verdict(inherent) and "encoder" in verdict(inherent) and "goal row" in verdict(inherent)
    fixed = _row(4.0, 0.02, 20.0)  # bound 50x; 20 of ours' 25 s before the loop
    assert time_split(fixed)["fixed"] == pytest.approx(0.8)
    assert "Avoidable" in verdict(fixed) and "fixed part (Z" in verdict(fixed)
    slow = _row(4.0, 0.02, 1.0)  # bound 50x; the loop takes 24 s for 2 s of FLOPs at Captum's rate
    assert time_split(slow)["overhead"] == pytest.approx(22 / 25)
    assert "loop overhead" in verdict(slow)
    md = pairs_markdown([_row(12.0, 0.05, 1.0), inherent, _row(3.0, 0.5, 1.0, a_kind="lines")])
    assert "1 of 2 box rows reach it" in md
    assert md.count("\n- **M, A ") == 2 and "A spans image** (3.0x)" in md


def test_pairs_cli_writes_the_table_with_settings_and_equal_outputs(tmp_path):
    """The demo resnet18 stand-in at 64 px (128 px behind input_scale 0.5): ours equals Captum on its windows,
    the FLOP columns are filled, and the Markdown states the size, machine, torch and the command."""
    import json

    from benchmarks import heatmap

    args = ["--pairs", "--size", "64", "--only", "resnet18", "--ours-runs", "1", "--a-kinds", "box",
            "--threads", "1", "--captum-ppe", "4", "--out-dir", str(tmp_path)]
    assert heatmap.main(args) == 0
    (row,) = json.loads((tmp_path / "heatmap_pairs.json").read_text())["rows"]
    assert row["size"] == 128 and row["n_locations"] == 64 and row["ours_sample_locations"] == 4
    assert row["max_abs_diff"] <= 1e-4 * row["h_max"] + 1e-6
    assert 0.0 < row["flop_share"] <= 1.0 + 1e-6 and row["flop_uncounted"] == 0
    assert row["flop_bound"] == pytest.approx(1 / (row["flop_share"] * row["ours_pass_flop_ratio"]), rel=1e-2)
    md = (tmp_path / "heatmap_pairs.md").read_text()
    assert "Image side: 64 px" in md and "torch " + torch.__version__ in md and "--only resnet18" in md
    assert "| demo UNet-resnet18, input_scale 0.5 | box | 128 | 64 (4) |" in md
