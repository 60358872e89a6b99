"""Model interpretation: leave-one-out (LOO) scores of sequence units."""

from nucflow.interpret.edits import LOO_MODES
from nucflow.interpret.loo import loo_columns, loo_scores
from nucflow.interpret.scoring import LOO_METHODS

__all__ = ["LOO_METHODS", "LOO_MODES", "loo_columns", "loo_scores"]
