"""Why a window scored as it did: a time-frequency heat-map on the model's own input picture.

    heat = explain(model, picture, method="occlusion" | "gradcam")   # (n_mels, frames), rows as in the picture

`model` is a loaded `Detector` (heat in calibrated p(fake) units) or a bare keras.Model (raw output units).

- **occlusion** (model-agnostic, works for every model row): a patch of `patch` mel bands x frames slides over the
  picture in steps of half a patch; each placement replaces the patch by the neutral picture and records how much
  the score drops. A pixel's heat is the mean drop over the placements covering it: positive = evidence for
  "fake", negative = evidence for "real".
- **gradcam** (convolutional models): Grad-CAM (Selvaraju et al., 2017) on the last convolutional feature map, with
  the gradient of the score's logit; non-negative, in arbitrary units, so only its shares mean anything.

The neutral value ("no information") is each mel band's own average level over the window, coloured with the same
magma map. Why not the dB floor (black): black is -80 dB digital silence, and a black hole with sharp edges in the
middle of speech is itself a strong, unnatural pattern (a dropout, a splice edge) that a spoofing detector may
react to, so masking with it measures the model's reaction to a hole rather than the loss of the patch. The band
mean keeps the band's level and the picture's colours on the magma curve, and removes exactly the within-band
movement over time where synthesis artefacts live; for `compact_cmn`, which subtracts each band's time mean before
anything else, a band-mean patch is (almost exactly) zero input. It needs nothing but the picture, so it also works
for models trained elsewhere without stored training statistics. `bench/explain_faithfulness.py` measures the
floor colour alongside it.
"""
from __future__ import annotations

import functools
import weakref

import keras
import numpy as np

from deepfake_detector.data import features
from deepfake_detector.model.model_store import Detector, logit
from deepfake_detector.params import Params

METHODS = ("occlusion", "gradcam")
NEUTRALS = ("band_mean", "floor")
# Occlusion patch in (mel bands, frames): 16 bands x 16 frames is 1/8 of the mel axis and ~0.37 s.
DEFAULT_PATCH = (16, 16)
# Regions: connected groups of the top 10% of pixels by heat, largest share of positive heat first.
REGION_TOP_FRACTION = 0.10
MAX_REGIONS = 3


# ---- pictures and their neutral version ---------------------------------------------------------------------------

def neutral_picture(picture: np.ndarray, neutral: str = "band_mean") -> np.ndarray:
    """The picture every masked pixel is taken from: each band's mean level over time, or the dB floor colour."""
    if neutral == "floor":
        return np.broadcast_to(features.magma_lut()[0], picture.shape).copy()
    if neutral != "band_mean":
        raise ValueError(f"unknown neutral value '{neutral}'; choose one of: {', '.join(NEUTRALS)}")
    band_mean = features.picture_levels(picture).mean(axis=1, keepdims=True)  # (n_mels, 1), picture rows
    levels = np.broadcast_to(np.round(band_mean), picture.shape[:2]).astype(np.uint8)
    return features.magma_lut()[levels]


# ---- scoring -------------------------------------------------------------------------------------------------------

def _keras_model(model) -> keras.Model:
    return model.model if isinstance(model, Detector) else model


def score_pictures(model, pictures: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(n, n_mels, frames, 3) uint8 -> (n,) scores: calibrated p(fake) for a Detector, raw output for a model."""
    network = _keras_model(model)
    raw = np.concatenate([np.asarray(network.predict_on_batch(pictures[start:start + batch_size])).reshape(-1)
                          for start in range(0, len(pictures), batch_size)])
    return model.calibrate(raw) if isinstance(model, Detector) else raw.astype(np.float64)


# ---- the two methods ----------------------------------------------------------------------------------------------

def _placements(size: int, patch: int, stride: int) -> list[int]:
    """Patch starts every `stride`, plus one flush with the far edge so every pixel is covered."""
    patch = min(patch, size)
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def occlusion(model, picture: np.ndarray, patch: tuple[int, int] = DEFAULT_PATCH, neutral: str = "band_mean",
              batch_size: int = 64) -> np.ndarray:
    """Mean score drop when a patch covering each pixel is replaced by the neutral picture."""
    height, width = picture.shape[:2]
    patch_h, patch_w = min(patch[0], height), min(patch[1], width)
    blank = neutral_picture(picture, neutral)
    boxes = [(row, col) for row in _placements(height, patch_h, max(1, patch_h // 2))
             for col in _placements(width, patch_w, max(1, patch_w // 2))]
    masked = np.repeat(picture[None], len(boxes), axis=0)
    for copy, (row, col) in zip(masked, boxes):
        copy[row:row + patch_h, col:col + patch_w] = blank[row:row + patch_h, col:col + patch_w]
    base = score_pictures(model, picture[None])[0]
    drops = base - score_pictures(model, masked, batch_size)
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for drop, (row, col) in zip(drops, boxes):
        total[row:row + patch_h, col:col + patch_w] += drop
        count[row:row + patch_h, col:col + patch_w] += 1
    return (total / count).astype(np.float32)


def last_feature_map_layer(network: keras.Model):
    """The last layer with a 4-D (batch, h, w, channels) output that comes after a convolution."""
    found, seen_conv = None, False
    for layer in network.layers:
        seen_conv = seen_conv or isinstance(layer, keras.layers.Conv2D)
        shape = getattr(layer, "output", None) is not None and layer.output.shape
        if seen_conv and shape and len(shape) == 4:
            found = layer
    if found is None:
        raise ValueError(f"model '{network.name}' has no convolutional feature map: Grad-CAM needs one "
                         "(use method='occlusion', which works for any model)")
    return found


_GRADCAM_FUNCTIONS = weakref.WeakKeyDictionary()  # keras.Model -> its traced Grad-CAM function, built once


def _gradcam_function(network: keras.Model):
    """A traced function picture batch -> (batch, h, w) Grad-CAM maps; tracing once makes later calls cheap."""
    import tensorflow as tf

    if network not in _GRADCAM_FUNCTIONS:
        probe = keras.Model(network.inputs, [last_feature_map_layer(network).output, network.output])

        @tf.function(reduce_retracing=True)
        def maps_for(pictures):
            with tf.GradientTape() as tape:
                maps, output = probe(pictures, training=False)
                # The logit, not the probability: a saturated sigmoid would leave almost no gradient. Summing over
                # the batch keeps each picture's gradient its own (nothing mixes pictures in inference mode).
                clipped = tf.clip_by_value(tf.reshape(output, [-1]), 1e-7, 1 - 1e-7)
                target = tf.reduce_sum(tf.math.log(clipped) - tf.math.log(1.0 - clipped))
            gradients = tape.gradient(target, maps)  # (batch, h, w, channels)
            channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            return tf.nn.relu(tf.reduce_sum(channel_weights * maps, axis=-1))

        _GRADCAM_FUNCTIONS[network] = maps_for
    return _GRADCAM_FUNCTIONS[network]


def gradcam(model, picture: np.ndarray) -> np.ndarray:
    """Grad-CAM heat on the last feature map, resized bilinearly to the picture's (n_mels, frames)."""
    import tensorflow as tf

    cam = _gradcam_function(_keras_model(model))(tf.constant(picture[None]))[0]  # (h, w)
    resized = tf.image.resize(cam[..., None], picture.shape[:2], method="bilinear")[..., 0]
    return np.asarray(resized, dtype=np.float32)


def explain(model, picture: np.ndarray, method: str = "occlusion", **options) -> np.ndarray:
    """(n_mels, frames, 3) uint8 picture -> (n_mels, frames) heat, rows and columns as in the picture."""
    if method == "occlusion":
        return occlusion(model, picture, **options)
    if method == "gradcam":
        return gradcam(model, picture)
    raise ValueError(f"unknown explanation method '{method}'; choose one of: {', '.join(METHODS)}")


# ---- deleting pixels (the faithfulness check) ---------------------------------------------------------------------

def delete_pixels(picture: np.ndarray, chosen: np.ndarray, neutral: str = "band_mean") -> np.ndarray:
    """The picture with the pixels where `chosen` (n_mels, frames) is True replaced by the neutral picture."""
    return np.where(chosen[..., None], neutral_picture(picture, neutral), picture)


def top_pixels(heat: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the `fraction` of pixels with the highest heat (ties broken by position)."""
    count = max(1, int(round(fraction * heat.size)))
    chosen = np.zeros(heat.size, dtype=bool)
    chosen[np.argsort(-heat, axis=None, kind="stable")[:count]] = True
    return chosen.reshape(heat.shape)


def random_pixels(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    count = max(1, int(round(fraction * shape[0] * shape[1])))
    chosen = np.zeros(shape[0] * shape[1], dtype=bool)
    chosen[rng.choice(chosen.size, size=count, replace=False)] = True
    return chosen.reshape(shape)


def deletion_drops(model, picture: np.ndarray, heat: np.ndarray, fraction: float = 0.1, random_repeats: int = 5,
                   seed: int = 0, neutral: str = "band_mean") -> tuple[float, float]:
    """Score drop (original - after) when the top `fraction` of pixels by heat are deleted, and the mean drop over
    `random_repeats` random deletions of the same number of pixels."""
    rng = np.random.default_rng(seed)
    chosen = [top_pixels(heat, fraction)] + [random_pixels(heat.shape, fraction, rng) for _ in range(random_repeats)]
    pictures = np.stack([picture] + [delete_pixels(picture, mask, neutral) for mask in chosen])
    scores = score_pictures(model, pictures)
    return float(scores[0] - scores[1]), float(np.mean(scores[0] - scores[2:]))


# ---- where: pixels -> seconds and hertz ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def band_edges_hz(params: Params) -> np.ndarray:
    """(n_mels + 1,) frequency boundaries of the mel bands, lowest first: half-way between adjacent centres."""
    import librosa

    edges = librosa.mel_frequencies(params.n_mels + 2, fmin=params.fmin, fmax=params.fmax)  # filter corners
    centres = edges[1:-1]
    return np.concatenate([[edges[0]], (centres[:-1] + centres[1:]) / 2, [edges[-1]]])


def top_regions(heat: np.ndarray, params: Params, offset_s: float = 0.0, end_s: float | None = None,
                top_fraction: float = REGION_TOP_FRACTION, max_regions: int = MAX_REGIONS) -> list[dict]:
    """Connected groups of the top pixels by heat as [{start, end, low_hz, high_hz, share}], biggest share first.

    `share` is the region's part of all positive heat in the map (for occlusion: of the score drops the map
    records). Column j is the STFT frame centred at offset_s + j * hop_length / sample_rate; times are clipped to
    [offset_s, end_s] (end_s default: offset_s + window_s).
    """
    from scipy import ndimage

    positive = np.clip(heat, 0.0, None)
    total = float(positive.sum())
    if total <= 0:
        return []
    cut = max(np.quantile(positive, 1.0 - top_fraction), 1e-12)
    labels, count = ndimage.label(positive >= cut, structure=np.ones((3, 3)))
    step = params.hop_length / params.sample_rate
    end_s = offset_s + params.window_s if end_s is None else end_s
    edges = band_edges_hz(params)
    n_rows = heat.shape[0]
    regions = []
    for rows, cols in ndimage.find_objects(labels)[:count]:
        share = float(positive[rows, cols][labels[rows, cols] > 0].sum()) / total
        low_band, high_band = n_rows - rows.stop, n_rows - 1 - rows.start  # picture row 0 is the top band
        regions.append({"start": round(offset_s + max(0.0, (cols.start - 0.5) * step), 3),
                        "end": round(min(end_s, offset_s + (cols.stop - 0.5) * step), 3),
                        "low_hz": round(float(edges[low_band])), "high_hz": round(float(edges[high_band + 1])),
                        "share": round(share, 4)})
    return sorted(regions, key=lambda region: -region["share"])[:max_regions]



# ---- a whole file: explain its windows, stitch their heat, draw the overlay ---------------------------------------

def explain_waveform(detector: Detector, waveform: np.ndarray, params: Params, method: str = "occlusion",
                     max_windows: int | None = None, **options) -> dict:
    """Explain the windows of a mono waveform (the `max_windows` highest-scoring ones, or all).

    Returns {"method", "windows": [{index, start, end, p_fake, regions, heat}]} in window order; `heat` is the
    (n_mels, frames) array (dropped before anything is written as JSON), regions are in file seconds.
    """
    images, windows = features.waveform_to_images(waveform, params)
    scores = score_pictures(detector, images)
    chosen = np.arange(len(images))
    if max_windows is not None:
        chosen = np.sort(np.argsort(-scores, kind="stable")[:max_windows])
    duration_s = len(waveform) / params.sample_rate
    explained = []
    for index in chosen.tolist():
        window = windows[index]
        heat = explain(detector, images[index], method, **options)
        explained.append({"index": index, "start": window.start_s, "end": window.end_s,
                          "p_fake": float(scores[index]), "picture": images[index], "heat": heat,
                          "regions": top_regions(heat, params, window.start_s, min(window.end_s, duration_s))})
    return {"method": method, "windows": explained}


def stitched_heat(explanation: dict, n_samples: int, params: Params) -> np.ndarray:
    """The windows' heat laid onto the whole file's frames (mean where windows overlap; 0 where none explained).

    A clip shorter than one window was looped to fill it, so its window's columns fold back onto the clip.
    """
    n_columns = 1 + n_samples // params.hop_length
    total = np.zeros((params.n_mels, n_columns))
    count = np.zeros(n_columns)
    for window in explanation["windows"]:
        heat = window["heat"]
        samples = int(round(window["start"] * params.sample_rate)) + np.arange(heat.shape[1]) * params.hop_length
        if n_samples < params.window_samples:
            samples = samples % n_samples
        columns = np.round(samples / params.hop_length).astype(int)
        inside = columns < n_columns
        np.add.at(total.T, columns[inside], heat[:, inside].T)
        np.add.at(count, columns[inside], 1)
    return (total / np.maximum(count, 1)).astype(np.float32)


def file_explanation(detector: Detector, waveform: np.ndarray, params: Params, method: str = "occlusion",
                     max_windows: int | None = None, **options) -> tuple[dict, np.ndarray, np.ndarray]:
    """explain_waveform plus the whole file's picture, its stitched heat and the file's top regions."""
    explanation = explain_waveform(detector, waveform, params, method, max_windows, **options)
    picture = features.colourise(features.band_normalised(waveform, params))  # the same recipe over the whole file
    heat = stitched_heat(explanation, len(waveform), params)
    explanation["regions"] = top_regions(heat, params, 0.0, len(waveform) / params.sample_rate)
    return explanation, picture, heat


def json_ready(explanation: dict) -> dict:
    """The explanation without its arrays (pictures and heat), for JSON output."""
    windows = [{key: value for key, value in window.items() if key not in ("picture", "heat")}
               for window in explanation["windows"]]
    return {**explanation, "windows": windows}


# Below ~1 kHz the mel scale is nearly linear, so lower ticks would crowd together.
_HZ_TICKS = (0, 500, 1000, 2000, 4000, 8000)


def render_overlay(picture: np.ndarray, heat: np.ndarray, params: Params, start_s: float, regions: list[dict],
                   title: str, method: str, size: tuple[float, float] = (10.0, 5.5),
                   spectrogram_panel: bool = True) -> bytes:
    """PNG bytes: the spectrogram with the top regions outlined (top panel, unless `spectrogram_panel` is False)
    and the heat over a grey copy of it (bottom).

    Axes in seconds and Hz (mel-spaced ticks). Occlusion heat is signed (red = evidence for fake, blue = for
    real, one scale centred on 0); Grad-CAM heat is non-negative.
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    step = params.hop_length / params.sample_rate
    n_rows, n_columns = heat.shape
    extent = (start_s - step / 2, start_s + (n_columns - 0.5) * step, 0, n_rows)
    edges = band_edges_hz(params)
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True) if spectrogram_panel else (None, figure.subplots())
    panels = [axes for axes in (top, bottom) if axes is not None]
    if top is not None:
        top.imshow(picture, aspect="auto", extent=extent, interpolation="nearest")
    grey = features.picture_levels(picture)
    bottom.imshow(grey, aspect="auto", extent=extent, cmap="gray", interpolation="nearest")
    limit = float(np.abs(heat).max()) or 1.0
    signed = method == "occlusion"
    shown = bottom.imshow(np.ma.masked_where(np.abs(heat) < 0.05 * limit, heat), aspect="auto", extent=extent,
                          cmap="RdBu_r" if signed else "inferno", vmin=-limit if signed else 0.0, vmax=limit,
                          alpha=0.75, interpolation="bilinear")
    figure.colorbar(shown, ax=panels, fraction=0.03, pad=0.01,
                    label="score drop when masked" if signed else "Grad-CAM (relative)")
    band_of = lambda hz: float(np.interp(hz, edges, np.arange(len(edges))))  # noqa: E731  Hz -> row from the bottom
    for number, region in enumerate(regions, start=1):
        low, high = band_of(region["low_hz"]), band_of(region["high_hz"])
        for axes in panels:
            axes.add_patch(Rectangle((region["start"], low), region["end"] - region["start"], high - low,
                                     fill=False, edgecolor="cyan", linewidth=1.5))
        panels[0].annotate(f"{number}: {100 * region['share']:.0f}%", (region["start"], high), color="cyan",
                           fontsize=8, va="bottom")
    ticks = [hz for hz in _HZ_TICKS if edges[0] <= hz <= edges[-1]]
    for axes in panels:
        axes.set_yticks([band_of(hz) for hz in ticks], [f"{hz / 1000:g}k" if hz >= 1000 else str(hz) for hz in ticks])
        axes.set_ylabel("frequency (Hz)")
    panels[0].set_title(title, fontsize=10)
    bottom.set_xlabel("time (s)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
