"""Explanations: known-answer heat-maps, the neutral picture, pixel deletion, regions in s/Hz, file overlays."""
import io

import keras
import numpy as np
import pytest
from PIL import Image

from deepfake_detector.data import features
from deepfake_detector.model import explain, model_store, models
from tiny_detector import TINY_PARAMS, save_tiny_detector

HEIGHT, WIDTH, _ = TINY_PARAMS.png_shape


def speechlike_waveform(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Harmonics under a syllable envelope plus noise: structure in every band and over time."""
    rate = TINY_PARAMS.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(150 + 40 * np.sin(2 * np.pi * 1.3 * t)) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 30)) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * voice + noise).astype(np.float32)


def picture(seed: int = 0) -> np.ndarray:
    images, _ = features.waveform_to_images(speechlike_waveform(seed=seed), TINY_PARAMS)
    return images[0]


def one_band_model(rows: slice) -> keras.Model:
    """A convolutional model that sees only picture rows `rows`: everything else is multiplied by zero.

    Its score grows with how much the band's brightness moves over time (the absolute deviation from each row's
    time mean, through a 3x3 convolution with positive weights), so detail inside the band is its "fake" evidence
    and a patch replaced by the band's flat mean level lowers the score.
    """
    keras.utils.set_random_seed(1)
    mask = np.zeros((HEIGHT, WIDTH, 1), dtype="float32")
    mask[rows] = 1.0
    pictures = keras.Input(shape=TINY_PARAMS.png_shape, dtype="uint8")
    scaled = keras.layers.Rescaling(1.0 / 255.0)(pictures)
    brightness = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones")(scaled)
    movement = keras.ops.abs(models.TimeMeanNormalisation()(brightness)) * mask
    hidden = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, activation="relu",
                                 kernel_initializer=keras.initializers.RandomUniform(0.0, 1.0))(movement)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    output = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones",
                                bias_initializer=keras.initializers.Constant(-0.5))(hidden)
    return keras.Model(pictures, output)


@pytest.mark.parametrize("rows", [slice(20, 36), slice(90, 110)])
@pytest.mark.parametrize("method", explain.METHODS)
def test_a_model_that_sees_one_band_gets_its_heat_in_that_band(rows, method):
    model = one_band_model(rows)
    heat = explain.explain(model, picture(), method=method)
    assert heat.shape == (HEIGHT, WIDTH)
    mass = np.abs(heat)
    assert mass.sum() > 0
    # An occlusion patch (16 rows) that overlaps the band spreads its drop over all its rows; Grad-CAM's feature
    # map comes from a 3x3 convolution, so it may spill one row past each edge of the band.
    spill = explain.DEFAULT_PATCH[0] - 1 if method == "occlusion" else 1
    assert mass[max(0, rows.start - spill):rows.stop + spill].sum() / mass.sum() > 0.999
    assert mass[rows].sum() / mass.sum() > 0.6


def test_neutral_picture_is_each_bands_mean_level_on_the_magma_curve():
    image = picture()
    levels = features.picture_levels(image)
    assert np.array_equal(features.magma_lut()[levels], image)  # colourise inverted exactly
    neutral = explain.neutral_picture(image)
    neutral_levels = features.picture_levels(neutral)
    assert np.array_equal(neutral_levels, np.repeat(neutral_levels[:, :1], WIDTH, axis=1))  # constant over time
    assert np.allclose(neutral_levels[:, 0], levels.mean(axis=1), atol=0.5)
    assert np.all(explain.neutral_picture(image, "floor") == features.magma_lut()[0])
    with pytest.raises(ValueError, match="neutral"):
        explain.neutral_picture(image, "grey")


def test_deleting_the_top_pixels_moves_a_one_band_model_more_than_random_pixels():
    model = one_band_model(slice(40, 60))
    image = picture(seed=2)
    heat = explain.explain(model, image, method="occlusion")
    top_drop, random_drop = explain.deletion_drops(model, image, heat, fraction=0.1, random_repeats=5)
    assert top_drop > 0
    assert top_drop > 3 * abs(random_drop)
    chosen = explain.top_pixels(heat, 0.1)
    assert chosen.sum() == round(0.1 * heat.size)
    assert np.array_equal(explain.delete_pixels(image, np.zeros_like(chosen)), image)


def test_regions_are_reported_in_seconds_and_hertz():
    heat = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    heat[HEIGHT - 20:HEIGHT - 10, 10:20] = 1.0  # bands 10-19 from the bottom, frames 10-19
    heat[5:8, 30:33] = 0.2  # a weaker one near the top
    regions = explain.top_regions(heat, TINY_PARAMS, offset_s=3.0)
    assert len(regions) == 2
    first, second = regions
    edges = explain.band_edges_hz(TINY_PARAMS)
    step = TINY_PARAMS.hop_length / TINY_PARAMS.sample_rate
    assert first["start"] == pytest.approx(3.0 + 9.5 * step, abs=1e-3)
    assert first["end"] == pytest.approx(3.0 + 19.5 * step, abs=1e-3)
    assert (first["low_hz"], first["high_hz"]) == (round(edges[10]), round(edges[20]))
    assert first["share"] == pytest.approx(100 / (100 + 9 * 0.2), abs=1e-3)
    assert second["low_hz"] > 8000 and second["share"] < first["share"]
    assert explain.top_regions(-heat, TINY_PARAMS) == []  # nothing pushes toward fake


def test_gradcam_refuses_a_model_without_a_feature_map():
    pictures = keras.Input(shape=TINY_PARAMS.png_shape, dtype="uint8")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1.0 / 255.0)(pictures))
    model = keras.Model(pictures, keras.layers.Dense(1, activation="sigmoid")(flat))
    with pytest.raises(ValueError, match="occlusion"):
        explain.explain(model, picture(), method="gradcam")
    with pytest.raises(ValueError, match="unknown explanation method"):
        explain.explain(model, picture(), method="saliency")


@pytest.mark.parametrize("seconds", [0.7, 2.6])
def test_file_explanation_stitches_windows_and_draws_an_overlay(tmp_path, seconds):
    detector = model_store.load_detector(save_tiny_detector(tmp_path))
    waveform = speechlike_waveform(seconds)
    explanation, whole, heat = explain.file_explanation(detector, waveform, TINY_PARAMS, "occlusion",
                                                        patch=(32, 16))
    n_windows = len(features.waveform_to_images(waveform, TINY_PARAMS)[1])
    assert len(explanation["windows"]) == n_windows
    assert heat.shape == whole.shape[:2] == (HEIGHT, 1 + len(waveform) // TINY_PARAMS.hop_length)
    assert np.abs(heat).sum() > 0
    for region in explanation["regions"]:
        assert 0.0 <= region["start"] < region["end"] <= seconds + 1e-6
    if n_windows == 1 and seconds >= TINY_PARAMS.window_s:
        assert np.allclose(heat, explanation["windows"][0]["heat"][:, :heat.shape[1]])
    png = explain.render_overlay(whole, heat, TINY_PARAMS, 0.0, explanation["regions"], "clip", "occlusion")
    width, height = Image.open(io.BytesIO(png)).size
    assert width > 600 and height > 300
    ready = explain.json_ready(explanation)
    assert "heat" not in ready["windows"][0] and "picture" not in ready["windows"][0]


def test_only_the_most_suspect_windows_are_explained_when_asked(tmp_path):
    detector = model_store.load_detector(save_tiny_detector(tmp_path))
    waveform = speechlike_waveform(3.5)
    explanation = explain.explain_waveform(detector, waveform, TINY_PARAMS, "gradcam", max_windows=2)
    every = explain.explain_waveform(detector, waveform, TINY_PARAMS, "gradcam")
    scores = sorted((window["p_fake"] for window in every["windows"]), reverse=True)
    assert [w["index"] for w in explanation["windows"]] == sorted(w["index"] for w in explanation["windows"])
    assert sorted((w["p_fake"] for w in explanation["windows"]), reverse=True) == pytest.approx(scores[:2])
