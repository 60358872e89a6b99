"""Datasets, splits, signal ETL, ROI pools, augmentation and synthetic demo data."""

SIMULATED_DATASETS = ("transcripts", "regression", "signals", "genome")
"""Names of the synthetic demo datasets (``nucflow simulate <name>``)."""
