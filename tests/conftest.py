"""Shared fixtures: synthetic audio made on the fly, and the read-only ../shared data when it exists."""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import soundfile

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def write_tone(path: Path, seconds: float, frequency: float = 440.0, sample_rate: int = 16000,
               amplitude: float = 0.5, channels: int = 1, noise: float = 0.0, seed: int = 0) -> Path:
    """Write a sine tone (optionally with seeded noise) as any format soundfile can write."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = amplitude * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(len(t))
    if channels > 1:
        signal = np.stack([signal] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), signal.astype(np.float32), sample_rate)
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (it sits beside the project on dev machines)")
    return SHARED_DATA
