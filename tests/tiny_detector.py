"""A small saved detector for inference tests: the baseline CNN at 32x32 working size, untrained but seeded.

Its windows are 1 s long (hop 1 s) so clips shorter than, equal to and many times a window stay tiny.
"""
from __future__ import annotations

from pathlib import Path

import keras

from deepfake_detector.model import model_store, models
from deepfake_detector.params import Params

TINY_PARAMS = Params(window_s=1.0, hop_s=1.0, image_height=32, image_width=32)


def save_tiny_detector(folder: Path, name: str = "tiny", threshold: float = 0.5, calibration: dict | None = None,
                       params: Params = TINY_PARAMS) -> Path:
    """Build, save (model_store.save_detector) and return the .keras path of a seeded untrained baseline."""
    keras.utils.set_random_seed(0)
    model_path = Path(folder) / f"{name}.keras"
    model_store.save_detector(models.build_model("baseline", params), model_path, params, threshold=threshold,
                              calibration=calibration)
    return model_path
