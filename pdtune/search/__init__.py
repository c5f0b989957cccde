"""`pdtune search`: Optuna over static pdmux plans under an SLO, shared between machines."""

from pdtune.search.runner import SearchConfig, SearchProgress, TrialRow, run_search, save_search
from pdtune.search.study import StudyMismatchError

__all__ = ["SearchConfig", "SearchProgress", "StudyMismatchError", "TrialRow", "run_search", "save_search"]
