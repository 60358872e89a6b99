"""Datasets, splits, signal ETL, ROI pools, augmentation and synthetic demo data."""
