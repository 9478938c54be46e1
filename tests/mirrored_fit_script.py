"""Run as a script: fit a registry model for a few epochs under MirroredStrategy on 2 logical CPU devices.

Logical devices can only be configured before TensorFlow initialises, so tests start this in a fresh process.
Prints one JSON line: {"replicas": 2, "losses": [loss per epoch]}. Usage: mirrored_fit_script.py MODEL_NAME
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deepfake_detector.data import features  # noqa: E402
from deepfake_detector.model import training  # noqa: E402
from deepfake_detector.params import Params  # noqa: E402

PARAMS = Params(window_s=1.0, hop_s=1.0)  # (128, 44, 3) pictures keep the fit quick


def synthetic_pictures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random dim magma pictures; the fake half has a bright high-frequency band (an easy, learnable cue)."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, 120, size=(n, *PARAMS.png_shape[:2]))
    labels = np.arange(n) % 2
    levels[labels == 1, 10:30, :] += 120
    return features.magma_lut()[levels], labels.astype(np.float32)


def main(model_name: str) -> None:
    strategy = training.make_strategy(devices=2)  # the training loop's own strategy set-up
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = training.compile_model(model_name, PARAMS, learning_rate=1e-3)
    pictures, labels = synthetic_pictures(32, seed=0)
    dataset = tf.data.Dataset.from_tensor_slices((pictures, labels)).shuffle(32, seed=0).batch(8)
    history = model.fit(dataset, epochs=6, verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": history.history["loss"]}))


if __name__ == "__main__":
    main(sys.argv[1])
