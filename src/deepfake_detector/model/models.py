"""Model registry: pure builders `build_<name>(params) -> keras.Model`, uncompiled, chosen by name.

Every model takes the raw uint8 RGB spectrogram picture (params.png_shape) and does its own resizing and
scaling, so training and inference cannot prepare images differently (PITFALLS 5). The output is one sigmoid
unit: p(fake), with 1 = fake as the positive class.
"""
from __future__ import annotations

import functools
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


# Keras' default BatchNorm momentum (0.99) needs hundreds of steps for its moving statistics to settle; with ~30
# steps per epoch the inference-mode outputs lag the weights and validation scores jump between epochs.
_BN_MOMENTUM = 0.9
# Compact model: (filters, stride) of each residual block, after a 24-filter stem and a 2x2 max-pool.
_COMPACT_BLOCKS = ((32, 2), (48, 2), (64, 2), (96, 1))


def _residual_block(hidden, filters: int, stride: int, dropout: float):
    """Two 3x3 conv + BatchNorm, ReLU between; a 1x1 projection on the shortcut when the shape changes."""
    shortcut = hidden
    hidden = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(hidden)
    hidden = layers.ReLU()(layers.BatchNormalization(momentum=_BN_MOMENTUM)(hidden))
    hidden = layers.Conv2D(filters, 3, padding="same", use_bias=False)(hidden)
    hidden = layers.BatchNormalization(momentum=_BN_MOMENTUM)(hidden)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
        shortcut = layers.BatchNormalization(momentum=_BN_MOMENTUM)(shortcut)
    hidden = layers.ReLU()(layers.Add()([hidden, shortcut]))
    return layers.SpatialDropout2D(dropout)(hidden)


@keras.saving.register_keras_serializable(package="deepfake_detector")
class TimeMeanNormalisation(layers.Layer):
    """Subtracts each (mel band, channel) average over time: cepstral mean normalisation in picture form.

    A recording chain (microphone, room, codec, a corpus' mastering) mostly adds a fixed per-band colouring; taking
    it away leaves the model the band-wise movement over time, where synthesis artefacts live.
    """

    def call(self, inputs):
        return inputs - keras.ops.mean(inputs, axis=2, keepdims=True)


def build_compact(params: Params, time_mean_normalised: bool = False) -> keras.Model:
    """A small residual CNN (~0.2M params) that reads the picture at its native size (128 x 173 by default).

    No Resizing: every pixel is one mel band x one frame, so nothing is interpolated (params.image_height and
    image_width are not used). The stem's 3x3 conv reads the three magma channels directly, which lets it learn
    the colour-to-level mapping. Global average pooling makes the score a clip-level statistic of the features
    rather than a function of where in the picture they sit.
    """
    pictures = _picture_input(params)
    hidden = layers.Rescaling(1.0 / 255.0)(pictures)  # (batch, n_mels, frames, 3) in [0, 1]
    if time_mean_normalised:
        hidden = TimeMeanNormalisation()(hidden)
    hidden = layers.Conv2D(24, 3, padding="same", use_bias=False)(hidden)
    hidden = layers.ReLU()(layers.BatchNormalization(momentum=_BN_MOMENTUM)(hidden))
    hidden = layers.MaxPooling2D()(hidden)  # (batch, 64, 86, 24)
    for filters, stride in _COMPACT_BLOCKS:
        hidden = _residual_block(hidden, filters, stride, dropout=0.1)  # ends at (batch, 8, 11, 96)
    hidden = layers.GlobalAveragePooling2D()(hidden)  # (batch, 96)
    hidden = layers.Dropout(0.3)(hidden)
    p_fake = layers.Dense(1, activation="sigmoid", name="p_fake")(hidden)
    return keras.Model(pictures, p_fake, name="compact_cmn" if time_mean_normalised else "compact")


MODELS: dict[str, Callable[[Params], keras.Model]] = {
    "baseline": build_baseline,
    "compact": build_compact,
    "compact_cmn": functools.partial(build_compact, time_mean_normalised=True),
}


def build_model(name: str, params: Params) -> keras.Model:
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](params)
