"""Compare sweeps (tables, small-n t intervals, paired tests, rank stability, plots) and recommend an
architecture for a dataset from its context descriptors. See docs/compare.md."""

from matseg_nb.compare.pipeline import compare_and_recommend, compare_sweeps
from matseg_nb.compare.recommend import Recommendation, recommend
from matseg_nb.compare.runs import RunSet, load_runs

__all__ = ["compare_sweeps", "compare_and_recommend", "recommend", "Recommendation", "load_runs", "RunSet"]
