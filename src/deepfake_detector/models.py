"""Model registry: pure builders `build_<name>(params) -> keras.Model`, uncompiled, chosen by name.

Every model takes the raw uint8 RGB spectrogram picture (params.png_shape) and does its own resizing and
scaling, so training and inference cannot prepare images differently (PITFALLS 5). The output is one sigmoid
unit: p(fake), with 1 = fake as the positive class.
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from deepfake_detector.params import Params


def _picture_input(params: Params) -> keras.KerasTensor:
    return keras.Input(shape=params.png_shape, dtype="uint8", name="spectrogram_rgb")


def _resize_and_scale(pictures, params: Params):
    # Bilinear resizing to the working resolution, then [0, 255] -> [0, 1].
    resized = layers.Resizing(params.image_height, params.image_width, interpolation="bilinear")(pictures)
    return layers.Rescaling(1.0 / 255.0)(resized)  # (batch, H, W, 3)


def build_baseline(params: Params) -> keras.Model:
    """The reference design: 3 conv + max-pool blocks (32/64/128), Flatten, Dense 128, sigmoid (~11M params)."""
    pictures = _picture_input(params)
    hidden = _resize_and_scale(pictures, params)
    for filters in (32, 64, 128):
        hidden = layers.Conv2D(filters, 3, activation="relu")(hidden)
        hidden = layers.MaxPooling2D()(hidden)
    hidden = layers.Flatten()(hidden)  # (batch, 26 * 26 * 128) at 224 x 224
    hidden = layers.Dense(128, activation="relu")(hidden)
    p_fake = layers.Dense(1, activation="sigmoid", name="p_fake")(hidden)
    return keras.Model(pictures, p_fake, name="baseline")


MODELS: dict[str, Callable[[Params], keras.Model]] = {
    "baseline": build_baseline,
}


def build_model(name: str, params: Params) -> keras.Model:
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](params)
