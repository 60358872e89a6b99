"""Network architectures, the name → class registry and the model-directory format."""

from nucflow.models.registry import build_model

__all__ = ["build_model"]
