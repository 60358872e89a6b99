"""nucflow: deep-learning models for nucleic-acid data."""

__version__ = "0.1.0"
