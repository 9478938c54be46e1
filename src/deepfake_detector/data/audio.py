"""Decode any supported audio file into a mono float32 waveform at the model's sample rate.

Bad input is never silently accepted: every rejection raises `AudioError` whose message is the one-line reason
that batch tools write into their errors file and that the web service returns to the user.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile
import soxr

from deepfake_detector.params import Params

# Containers libsndfile cannot open; they go through ffmpeg when it is installed.
_FFMPEG_ONLY = {".m4a", ".aac", ".mp4", ".opus", ".webm"}


class AudioError(Exception):
    """A file that cannot be used; str(error) is a short human-readable reason."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    original_sample_rate: int
    channels: int
    duration_s: float  # after resampling, in seconds


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    # always_2d gives (samples, channels) for mono and multichannel alike.
    samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples, sample_rate


def _decode_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(f"no decoder for '{path.suffix}' files: install ffmpeg (apt-get install ffmpeg)")
    probe = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "f32le", "-acodec", "pcm_f32le", "-"],
        capture_output=True, check=False,
    )
    if probe.returncode != 0:
        message = probe.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"ffmpeg could not decode the file: {message[-1] if message else 'unknown error'}")
    # Ask ffmpeg for the stream layout separately so channels can be split correctly.
    layout = subprocess.run(
        [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-select_streams", "a:0",
         "-show_entries", "stream=sample_rate,channels", "-of", "csv=p=0", str(path)],
        capture_output=True, check=False, text=True,
    )
    try:
        rate_text, channels_text = layout.stdout.strip().split(",")[:2]
        sample_rate, channels = int(rate_text), int(channels_text)
    except ValueError as error:
        raise AudioError("ffprobe found no audio stream") from error
    samples = np.frombuffer(probe.stdout, dtype="<f4")
    usable = len(samples) - len(samples) % channels
    return samples[:usable].reshape(-1, channels).copy(), sample_rate


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Raw decode: (samples, channels) float32 array and its native sample rate."""
    path = Path(path)
    if path.suffix.lower() in _FFMPEG_ONLY:
        return _decode_ffmpeg(path)
    try:
        return _decode_soundfile(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        # libsndfile sniffs content, not extensions; an MP3 it cannot read may still be fine for ffmpeg.
        if shutil.which("ffmpeg") is not None:
            try:
                return _decode_ffmpeg(path)
            except AudioError:
                pass
        raise AudioError(f"not a readable audio file ({str(error).strip() or type(error).__name__})") from error


def to_mono_resampled(samples: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Average the channels and resample with soxr (high quality), returning float32 mono."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sample_rate != target_rate:
        mono = soxr.resample(mono, sample_rate, target_rate, quality="HQ").astype(np.float32)
    return mono


def check_waveform(waveform: np.ndarray, params: Params) -> None:
    """Raise AudioError when a decoded waveform is unusable (non-finite, silent, too short, too long)."""
    duration_s = len(waveform) / params.sample_rate
    if len(waveform) == 0:
        raise AudioError("no audio samples (empty stream)")
    if not np.all(np.isfinite(waveform)):
        raise AudioError("audio contains NaN or infinite samples")
    if duration_s < params.min_duration_s:
        raise AudioError(f"too short: {duration_s:.3f} s < minimum {params.min_duration_s} s")
    if duration_s > params.max_duration_s:
        raise AudioError(f"too long: {duration_s:.0f} s > maximum {params.max_duration_s:.0f} s")
    if float(np.max(np.abs(waveform))) < params.silence_peak:
        raise AudioError(f"silent: peak level below {params.silence_peak:g}")


def load_audio(path: Path, params: Params) -> tuple[np.ndarray, AudioInfo]:
    """Decode, downmix and resample `path`; validate it; return (waveform, info). Raises AudioError."""
    path = Path(path)
    if not path.is_file():
        raise AudioError("file not found")
    size = path.stat().st_size
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    if size > params.max_file_mb * 1024 * 1024:
        raise AudioError(f"file too large: {size / 2**20:.0f} MB > {params.max_file_mb:.0f} MB")
    samples, sample_rate = decode(path)
    waveform = to_mono_resampled(samples, sample_rate, params.sample_rate)
    check_waveform(waveform, params)
    info = AudioInfo(sample_rate, int(samples.shape[1]), len(waveform) / params.sample_rate)
    return waveform, info
