"""Training: Lightning modules, fitting one fold, metrics."""
