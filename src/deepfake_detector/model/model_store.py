"""Saving and loading a trained detector together with everything needed to use it.

A model is two files: `<name>.keras` (weights and graph) and `<name>.json` (metadata: feature parameters,
class names, decision threshold, calibration, training data summary, versions). Prediction, evaluation and the
web service read the parameters from the metadata, never from defaults, and refuse a model whose metadata is
missing or disagrees with the network.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfake_detector.io_utils import atomic_path, atomic_write_text
from deepfake_detector.params import CLASS_NAMES, Params

if TYPE_CHECKING:  # Keras (and TensorFlow under it) is imported only when a model is loaded or saved, so that
    import keras   # `from deepfake_detector import Detector` and every command's --help stay fast.

METADATA_VERSION = 1


class ModelError(Exception):
    """A model file or its metadata cannot be used; str(error) says why in one line."""


@dataclasses.dataclass(frozen=True)
class Detector:
    """A trained detector: the network with its metadata. This is the public Python API:

        from deepfake_detector import Detector
        detector = Detector.load("models/compact_cmn.keras")    # the .json metadata must sit beside it
        result = detector.predict("clip.mp3")                    # or detector.predict(waveform, sr=16000)
        print(result["label"], result["p_fake"], result["threshold"])

    `predict` returns the record `deepfake-detector predict --json` writes (see inference.py); `explain` the
    heat-map regions `predict --explain` reports (see explain.py). `calibrate` maps
    raw network outputs onto reported probabilities.
    """

    model: keras.Model
    metadata: dict
    params: Params
    path: Path

    @classmethod
    def load(cls, model_path) -> Detector:
        """Load `<name>.keras` and its `<name>.json`; raises ModelError with a one-line reason."""
        return load_detector(model_path)

    def predict(self, file_or_array, sr: int | None = None, *, hop_s: float | None = None,
                aggregate: str = "mean", batch_size: int = 32) -> dict:
        """Score an audio file, or a waveform: 1-D mono or (samples, channels) as soundfile reads it, at `sr` Hz
        (default: the model's rate, 22,050). Same record and code as the CLI; an unusable input gives a record
        whose `error` says why instead of raising."""
        from deepfake_detector.model import inference  # inference imports this module

        return inference.predict_input(self, file_or_array, sr, hop_s, aggregate, batch_size)

    def explain(self, file_or_array, sr: int | None = None, *, method: str = "occlusion",
                max_windows: int | None = None) -> dict:
        """What drove the score, as `predict --explain` reports it: {method, windows: [{index, start, end, p_fake,
        regions}]} for the `max_windows` most suspect windows (default all), each region {start, end, low_hz,
        high_hz, share}. `method` is "occlusion" (any model) or "gradcam" (conv models). A file that cannot be used
        raises audio.AudioError."""
        from deepfake_detector.model import explain, inference

        waveform = inference.input_waveform(self, file_or_array, sr)
        return explain.json_ready(explain.explain_waveform(self, waveform, self.params, method, max_windows))

    @property
    def name(self) -> str:
        return self.metadata["name"]

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    def calibrate(self, raw_scores: np.ndarray) -> np.ndarray:
        """Apply the saved calibration (Platt scaling on the logit) or return the scores unchanged."""
        return apply_calibration(raw_scores, self.metadata.get("calibration"))


def logit(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(clipped / (1 - clipped))


def platt_apply(raw_scores: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(slope * logit(raw_scores) + intercept)))


def apply_calibration(raw_scores: np.ndarray, calibration: dict | None) -> np.ndarray:
    """Calibrated probabilities, or the raw scores when the model has no calibration."""
    raw_scores = np.asarray(raw_scores, dtype=np.float64)
    if not calibration:
        return raw_scores
    return platt_apply(raw_scores, calibration["slope"], calibration["intercept"])


def fit_platt(raw_scores: np.ndarray, labels: np.ndarray) -> dict:
    """Fit p = sigmoid(slope * logit(raw) + intercept) on validation scores (Platt, 1999).

    Platt's smoothed targets (n+ + 1) / (n+ + 2) and 1 / (n- + 2) replace 1 and 0, so perfectly separated
    validation scores give a finite slope instead of a step function. Each score enters twice, once per class,
    weighted by its target.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels).astype(int).ravel()
    n_fake, n_real = int(labels.sum()), int(len(labels) - labels.sum())
    targets = np.where(labels == 1, (n_fake + 1) / (n_fake + 2), 1 / (n_real + 2))
    features = np.tile(logit(raw_scores).reshape(-1, 1), (2, 1))
    classes = np.r_[np.ones(len(labels)), np.zeros(len(labels))]
    weights = np.r_[targets, 1 - targets]
    regression = LogisticRegression(C=1e4).fit(features, classes, sample_weight=weights)
    return {"method": "platt", "slope": float(regression.coef_[0, 0]),
            "intercept": float(regression.intercept_[0])}


def metadata_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).resolve().parent)
        return result.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def library_versions() -> dict:
    import keras
    import librosa
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "librosa": librosa.__version__, "numpy": np.__version__}


def save_detector(model: keras.Model, model_path: Path, params: Params, threshold: float, **metadata) -> dict:
    """Write `<name>.keras` and `<name>.json` atomically; extra keyword arguments go into the metadata."""
    model_path = Path(model_path)
    record = {
        "metadata_version": METADATA_VERSION,
        "name": model_path.stem,
        "architecture": model.name,
        "params": params.to_dict(),
        "class_names": list(params.class_names),
        "positive_class": params.class_names[1],
        "input_shape": list(params.png_shape),
        "threshold": float(threshold),
        "parameters": int(model.count_params()),
        "git_commit": git_commit(),
        # Tells this training run from an earlier model saved under the same name (model cards match reports by it).
        "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **metadata,
    }
    with atomic_path(model_path) as tmp:
        # Keras insists on the .keras suffix, so save to a sibling name and let atomic_path rename it.
        keras_tmp = tmp.with_suffix(".keras")
        model.save(keras_tmp, include_optimizer=False)  # a third of the size; nothing resumes training
        keras_tmp.replace(tmp)
    atomic_write_text(metadata_path(model_path), json.dumps(record, indent=2, default=float) + "\n")
    return record


def load_metadata(model_path: Path) -> dict:
    path = metadata_path(model_path)
    if not path.is_file():
        raise ModelError(f"model metadata {path} is missing: a model cannot be used without it")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelError(f"model metadata {path} is not valid JSON: {error}") from error
    for key in ("name", "params", "class_names", "threshold", "input_shape"):
        if key not in metadata:
            raise ModelError(f"model metadata {path} lacks '{key}'")
    if tuple(metadata["class_names"]) != CLASS_NAMES:
        raise ModelError(f"model metadata {path} has classes {metadata['class_names']}, expected {list(CLASS_NAMES)}")
    return metadata


def load_detector(model_path: Path) -> Detector:
    """Load a model and its metadata, checking that they agree with each other."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} not found")
    metadata = load_metadata(model_path)
    try:
        params = Params.from_dict(metadata["params"])
    except (TypeError, ValueError) as error:
        raise ModelError(f"model metadata has invalid params: {error}") from error
    import keras

    from deepfake_detector.model import models  # noqa: F401  registers the custom layers load_model must find

    model = keras.models.load_model(model_path, compile=False)
    expected = tuple(params.png_shape)
    if tuple(model.input_shape[1:]) != expected or tuple(metadata["input_shape"]) != expected:
        raise ModelError(f"model input {model.input_shape[1:]} does not match its metadata {expected}")
    return Detector(model=model, metadata=metadata, params=params, path=model_path)


def latest_model(models_dir: Path) -> Path:
    """The most recently written model in `models_dir` that has metadata beside it."""
    candidates = [path for path in Path(models_dir).glob("*.keras") if metadata_path(path).is_file()]
    if not candidates:
        raise ModelError(f"no trained model with metadata in {models_dir}/: train one with src/train_cnn.py")
    return max(candidates, key=lambda path: path.stat().st_mtime)
