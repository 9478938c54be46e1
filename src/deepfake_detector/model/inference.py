"""Scoring: audio -> windows -> calibrated p(fake) per window -> one verdict per file.

`predict_file` and `score_waveform` are what the CLIs and the web service call. Both return the same dict:

    {file, label, p_fake, threshold, model, duration_s, windows: [{start, end, p_fake}],
     curve: [{start, end, p_fake}], suspect_span: {start, end, p_fake} | None, error}

`error` is None on success; for an unusable input it is the one-line reason and `label`/`p_fake` are None. Pictures
come from `features.waveform_to_images` with the detector's own Params (the code that rendered the training
PNGs), so a raw clip scores exactly as its PNG does.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from deepfake_detector.data import audio, features
from deepfake_detector.model import model_store
from deepfake_detector.model.model_store import Detector
from deepfake_detector.params import AUDIO_EXTENSIONS, Params

# How per-window scores become a file's score. "mean" is the default: a file is called fake when its average
# window is; "max" flags a file when any window is (more sensitive to partly synthetic recordings); "median"
# ignores a minority of odd windows. Rules apply to raw window scores; the result is then calibrated (file_score).
AGGREGATES = {"mean": np.mean, "max": np.max, "median": np.median}

RESULT_KEYS = ("file", "label", "p_fake", "threshold", "model", "duration_s", "windows", "curve", "suspect_span",
               "error")
# The score curve's resolution: fine enough to place a spliced-in sentence, coarse enough to stay readable.
CURVE_STEP_S = 0.5


def aggregate(window_scores, rule: str = "mean") -> float:
    if rule not in AGGREGATES:
        raise ValueError(f"unknown aggregate '{rule}'; choose one of: {', '.join(AGGREGATES)}")
    return float(AGGREGATES[rule](np.asarray(window_scores, dtype=np.float64)))


def inference_params(detector: Detector, hop_s: float | None = None, window_s: float | None = None) -> Params:
    """The detector's Params, with the window hop optionally changed; a different window length is refused."""
    params = detector.params
    if window_s is not None and not np.isclose(window_s, params.window_s):
        raise ValueError(
            f"model '{detector.name}' was trained on {params.window_s:g} s windows; "
            f"--window {window_s:g} would show it a time scale it has never seen"
        )
    if hop_s is None:
        return params
    if not hop_s > 0:
        raise ValueError(f"hop must be positive, got {hop_s:g} s")
    return params.replace(hop_s=float(hop_s))


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose and run a detector, shared by predict.py and evaluate.py."""
    parser.add_argument("--model", type=Path,
                        help="trained model .keras with its .json beside it (default: newest in models/)")
    parser.add_argument("--hop", type=float, help="seconds between window starts (default: the model's)")
    parser.add_argument("--aggregate", choices=sorted(AGGREGATES), default="mean",
                        help="how window scores become the file score (default: mean)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per network call (default: 32)")


def detector_from_args(args: argparse.Namespace, models_dir: Path,
                       window_s: float | None = None) -> tuple[Detector, Params]:
    """Load --model (or the newest model in models_dir) and the Params to score with; raises on a bad flag."""
    detector = model_store.load_detector(args.model or model_store.latest_model(models_dir))
    return detector, inference_params(detector, args.hop, window_s)


def raw_scores(detector: Detector, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """(n, height, width, 3) uint8 pictures -> (n,) uncalibrated network outputs."""
    # predict_on_batch runs a traced graph: ~25% faster than an eager model(x) call for the baseline on CPU.
    raw = [
        np.asarray(detector.model.predict_on_batch(images[start:start + batch_size])).reshape(-1)
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(raw)


def score_images(detector: Detector, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """(n, height, width, 3) uint8 pictures -> (n,) calibrated p(fake) per picture."""
    return detector.calibrate(raw_scores(detector, images, batch_size))


def file_score(detector: Detector, window_raw_scores: np.ndarray, rule: str = "mean") -> float:
    """A file's p(fake): its windows aggregated on the raw network scale, then calibrated.

    Training fitted the calibration and chose the threshold on exactly this quantity, so a file gets the same
    verdict here as it did in training. (Max and median commute with the monotone calibration; the mean does
    not, which is why the order matters.)
    """
    return float(detector.calibrate(np.array([aggregate(window_raw_scores, rule)]))[0])


def score_curve(windows: list[dict], duration_s: float, step_s: float = CURVE_STEP_S) -> list[dict]:
    """p(fake) per `step_s` segment of the file: the mean of the windows covering it, weighted by overlap.

    With windows overlapping (--hop below the window length) each segment is covered by several windows, and a
    short synthetic stretch raises the curve most where all the windows that contain it agree.
    """
    if not windows or not duration_s > 0:
        return []
    starts = np.array([window["start"] for window in windows])
    ends = np.array([window["end"] for window in windows])
    scores = np.array([window["p_fake"] for window in windows])
    curve = []
    for index in range(int(np.ceil(duration_s / step_s - 1e-9))):
        start, end = index * step_s, min(duration_s, (index + 1) * step_s)
        overlap = np.clip(np.minimum(ends, end) - np.maximum(starts, start), 0.0, None)
        if overlap.sum() > 0:
            curve.append({"start": round(start, 3), "end": round(end, 3),
                          "p_fake": float(np.dot(overlap, scores) / overlap.sum())})
    return curve


def suspect_span(curve: list[dict]) -> dict | None:
    """The most suspect stretch: the highest curve segment, grown over its neighbours while they stay nearer to
    that peak than to the file's median segment (a flat curve gives the whole file: nothing stands out)."""
    if not curve:
        return None
    scores = np.array([segment["p_fake"] for segment in curve])
    peak = int(np.argmax(scores))
    floor = (scores[peak] + np.median(scores)) / 2
    first = last = peak
    while first > 0 and scores[first - 1] >= floor:
        first -= 1
    while last < len(scores) - 1 and scores[last + 1] >= floor:
        last += 1
    return {"start": curve[first]["start"], "end": curve[last]["end"], "p_fake": float(scores[first:last + 1].mean())}


def _result(detector: Detector, file, duration_s, windows=(), p_fake=None, error=None) -> dict:
    label = None if p_fake is None else ("fake" if p_fake >= detector.threshold else "real")
    windows = list(windows)
    curve = score_curve(windows, duration_s) if windows else []
    return {"file": None if file is None else str(file), "label": label, "p_fake": p_fake,
            "threshold": detector.threshold, "model": detector.name, "duration_s": duration_s,
            "windows": windows, "curve": curve, "suspect_span": suspect_span(curve), "error": error}


def score_waveform(detector: Detector, waveform: np.ndarray, hop_s: float | None = None,
                   aggregate_rule: str = "mean", batch_size: int = 32, file=None) -> dict:
    """Score a mono waveform at detector.params.sample_rate; an unusable one gives a result with `error` set."""
    params = inference_params(detector, hop_s)
    duration_s = len(waveform) / params.sample_rate
    try:
        audio.check_waveform(waveform, params)
    except audio.AudioError as error:
        return _result(detector, file, duration_s, error=str(error))
    images, windows = features.waveform_to_images(waveform, params)  # (n_windows, n_mels, frames, 3)
    window_raw = raw_scores(detector, images, batch_size)
    spans = [{"start": window.start_s, "end": window.end_s, "p_fake": float(score)}
             for window, score in zip(windows, detector.calibrate(window_raw))]
    return _result(detector, file, duration_s, spans, file_score(detector, window_raw, aggregate_rule))


def load_and_score(detector: Detector, path: Path, hop_s: float | None = None, aggregate_rule: str = "mean",
                   batch_size: int = 32) -> tuple[dict, np.ndarray | None]:
    """predict_file's result plus the decoded waveform (None when the file could not be loaded), for plotting."""
    inference_params(detector, hop_s)  # refuse a bad hop before decoding anything
    try:
        waveform, _ = audio.load_audio(Path(path), detector.params)
    except audio.AudioError as error:
        return _result(detector, path, None, error=str(error)), None
    return score_waveform(detector, waveform, hop_s, aggregate_rule, batch_size, file=path), waveform


def predict_file(detector: Detector, path: Path, hop_s: float | None = None, aggregate_rule: str = "mean",
                 batch_size: int = 32) -> dict:
    """Decode, validate and score one audio file; never raises for a bad file (see `error`)."""
    return load_and_score(detector, path, hop_s, aggregate_rule, batch_size)[0]


def input_waveform(detector: Detector, file_or_array, sample_rate: int | None = None) -> np.ndarray:
    """A file decoded as predict_file decodes it (AudioError when it cannot be used), or an array (1-D, or
    samples x channels) downmixed and resampled from `sample_rate` (default: the model's) the same way."""
    if isinstance(file_or_array, (str, os.PathLike)):
        if sample_rate is not None:
            raise ValueError("sr applies to arrays only: a file's sample rate is read from the file")
        return audio.load_audio(Path(file_or_array), detector.params)[0]
    samples = np.asarray(file_or_array, dtype=np.float32)
    if samples.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D waveform or (samples, channels), got shape {samples.shape}")
    target_rate = detector.params.sample_rate
    return audio.to_mono_resampled(samples, sample_rate or target_rate, target_rate)


def predict_input(detector: Detector, file_or_array, sample_rate: int | None = None, hop_s: float | None = None,
                  aggregate_rule: str = "mean", batch_size: int = 32) -> dict:
    """Detector.predict: a path goes through predict_file (a bad file gives a record with its error); an array
    through input_waveform, then score_waveform."""
    if isinstance(file_or_array, (str, os.PathLike)):
        if sample_rate is not None:
            raise ValueError("sr applies to arrays only: a file's sample rate is read from the file")
        return predict_file(detector, Path(file_or_array), hop_s, aggregate_rule, batch_size)
    return score_waveform(detector, input_waveform(detector, file_or_array, sample_rate), hop_s, aggregate_rule,
                          batch_size)


def predict_files(detector: Detector, paths: Iterable[Path], hop_s: float | None = None,
                  aggregate_rule: str = "mean", batch_size: int = 32,
                  progress: bool = True) -> Iterator[tuple[dict, np.ndarray | None]]:
    """load_and_score over many files with a progress bar (shown on terminals only)."""
    paths = list(paths)
    for path in tqdm(paths, desc="scoring", unit="file", disable=None if progress and len(paths) > 1 else True):
        yield load_and_score(detector, path, hop_s, aggregate_rule, batch_size)


def find_audio_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, plus every file with an audio extension under the given folders (recursive, sorted)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            found.append(path)
    return found


def flagged_spans(windows: list[dict], threshold: float) -> list[tuple[float, float]]:
    """Time spans covered by windows scored >= threshold, overlapping windows merged into one span."""
    spans = []
    for window in sorted(windows, key=lambda window: window["start"]):
        if window["p_fake"] < threshold:
            continue
        if spans and window["start"] <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], window["end"]))
        else:
            spans.append((window["start"], window["end"]))
    return spans


def plot_timeline(result: dict, waveform: np.ndarray, params: Params, out_png: Path,
                  known_span: tuple[float, float] | None = None) -> None:
    """Whole-file magma spectrogram on top; below, window p(fake), the score curve and its most suspect span,
    with the windows over threshold shaded. `known_span` (a benchmark's inserted synthetic stretch) is outlined."""
    # A Figure on the Agg canvas, like reports.py: no pyplot, so no global backend state in the web service.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deepfake_detector.io_utils import atomic_path

    duration_s = len(waveform) / params.sample_rate
    # The same mel/dB/magma recipe as the model's input, over the whole file instead of one window.
    picture = features.colourise(features.band_normalised(waveform, params))  # (n_mels, frames, 3)
    figure = Figure(figsize=(10, 5))
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    top.imshow(picture, aspect="auto", extent=(0.0, duration_s, 0, params.n_mels), interpolation="nearest")
    top.set_ylabel("mel band")
    top.set_title(f"{Path(result['file'] or 'waveform').name}: {result['label']} "
                  f"(p_fake {result['p_fake']:.3f}, threshold {result['threshold']:.3f}, model {result['model']})")
    windows = result["windows"]
    centres = [(window["start"] + window["end"]) / 2 for window in windows]
    scores = [window["p_fake"] for window in windows]
    bottom.hlines(scores, [w["start"] for w in windows], [w["end"] for w in windows], colors="tab:blue", alpha=0.4)
    bottom.plot(centres, scores, "o-", color="tab:blue", label="window p_fake")
    curve = result.get("curve") or []
    if curve:
        bottom.stairs([segment["p_fake"] for segment in curve],
                      [curve[0]["start"]] + [segment["end"] for segment in curve],
                      color="black", linewidth=1.5, label=f"curve ({CURVE_STEP_S:g} s segments)")
    span = result.get("suspect_span")
    if span:
        bottom.axvspan(span["start"], span["end"], ymin=0.0, ymax=0.06, color="black", linewidth=0,
                       label="most suspect span")
    if known_span:
        top.axvspan(*known_span, fill=False, edgecolor="lime", linewidth=2)
        bottom.axvspan(*known_span, fill=False, edgecolor="lime", linewidth=2, hatch="//",
                       label="inserted synthetic stretch")
    bottom.axhline(result["threshold"], color="tab:red", linestyle="--", label="threshold")
    for start, end in flagged_spans(windows, result["threshold"]):
        bottom.axvspan(start, end, color="tab:red", alpha=0.2, linewidth=0)
        # A strip along the top edge keeps the spectrogram itself unobscured.
        top.axvspan(start, end, ymin=0.94, color="tab:red", alpha=0.9, linewidth=0)
    bottom.set_ylim(0.0, 1.0)
    bottom.set_xlim(0.0, duration_s)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("p(fake)")
    bottom.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    with atomic_path(Path(out_png)) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
