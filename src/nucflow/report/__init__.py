"""Plots of training histories and results."""
