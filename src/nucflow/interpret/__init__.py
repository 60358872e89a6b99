"""Model interpretation: leave-one-out (LOO) scores of sequence units."""

from nucflow.interpret.loo import LOO_MODES, loo_scores

__all__ = ["LOO_MODES", "loo_scores"]
