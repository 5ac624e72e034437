"""Shared fixtures. The real mirror of the upstream data lives beside the checkout in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _nasa_root() -> Path:
    mirror = os.environ.get("MATSEG_DATA_MIRROR")
    candidates = [Path(mirror)] if mirror else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for base in candidates:
        root = base / "nasa-pmm" / "benchmark_segmentation_data"
        if root.is_dir():
            return root
    raise RuntimeError(
        "the nasa-pmm mirror was not found: set MATSEG_DATA_MIRROR to the folder holding nasa-pmm/ "
        f"(looked in {[str(c) for c in candidates]})"
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def nasa_root() -> Path:
    """Path to ``nasa-pmm/benchmark_segmentation_data`` in the local mirror (always present here and in CI)."""
    return _nasa_root()


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Keep tests from oversubscribing the 2-core machine."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    yield
