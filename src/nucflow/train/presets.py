"""Named training recipes (``training.preset``): values filled in where the config sets none."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

TRAINING_PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # The original Saluki (Agarwal & Kelley 2022): Adam lr 1e-4, β2 0.998, clip 0.5,
        # batch 64, L2 0.001 (here AdamW's decay), random shifts of up to 3 nt, patience 25 on
        # validation Pearson r, at most 250 epochs.
        "saluki": MappingProxyType(
            {
                "learning_rate": 1e-4,
                "betas": [0.9, 0.998],
                "gradient_clip": 0.5,
                "batch_size": 64,
                "weight_decay": 0.001,
                "random_shift": 3,
                "epochs": 250,
                "patience": 25,
                "monitor": "val_pearson_r",
                "n_samples_per_epoch": None,
            }
        ),
        # The rna_saluki_cnn plugin of biolm_utils: AdamW lr 1e-3, clip 0.4, decay 0.001,
        # batch 32 (8 × 4 accumulation), 100 epochs, patience 10.
        "rna_saluki_cnn": MappingProxyType(
            {
                "learning_rate": 1e-3,
                "betas": [0.9, 0.999],
                "gradient_clip": 0.4,
                "batch_size": 32,
                "weight_decay": 0.001,
                "epochs": 100,
                "patience": 10,
                "n_samples_per_epoch": None,
            }
        ),
    }
)


def apply_training_presets(config: dict[str, Any]) -> dict[str, Any]:
    """Fill every experiment's ``training`` keys from its ``preset``; explicit keys win."""
    for experiment in (config.get("experiments") or {}).values():
        training = experiment.get("training") if isinstance(experiment, dict) else None
        if isinstance(training, dict) and training.get("preset") in TRAINING_PRESETS:
            for key, value in TRAINING_PRESETS[training["preset"]].items():
                training.setdefault(key, list(value) if isinstance(value, list) else value)
    return config
