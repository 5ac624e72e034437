"""What to annotate next: rank unlabelled images by atypicality, model uncertainty and diversity."""

from matseg_nb.suggest.pipeline import SuggestResult, suggest, suggest_for_loop
from matseg_nb.suggest.ranking import Suggestion, SuggestWeights, rank_candidates

__all__ = ["SuggestResult", "SuggestWeights", "Suggestion", "rank_candidates", "suggest", "suggest_for_loop"]
