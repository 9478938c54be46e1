"""Vocoder copy-synthesis: analyse a real clip and resynthesise it, giving a "cloned" voice of the same speaker.

Each function maps a mono float waveform at `sample_rate` to a new waveform of about the same length, and is
deterministic for a given `seed`.
"""
from __future__ import annotations

import librosa
import numpy as np
import pysptk
import pyworld
from pysptk.synthesis import AllPoleDF, Synthesizer

# Analysis frames: 25 ms windows every 5 ms at 16 kHz.
_FRAME = 400
_HOP = 80
_LPC_ORDER = 20
_F0_RANGE_HZ = (60.0, 400.0)


def _dithered(waveform: np.ndarray, seed: int) -> np.ndarray:
    # Digital silence makes the LPC/WORLD analyses divide by zero; a -100 dB seeded dither avoids it.
    noise = np.random.default_rng(seed).standard_normal(len(waveform)) * 1e-5
    return waveform.astype(np.float64) + noise


def world_resynthesis(waveform: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """WORLD: DIO+StoneMask F0, CheapTrick envelope, D4C aperiodicity, then synthesis."""
    signal = _dithered(waveform, seed)
    frame_period_ms = 1000.0 * _HOP / sample_rate
    f0, times = pyworld.dio(signal, sample_rate, f0_floor=_F0_RANGE_HZ[0], f0_ceil=_F0_RANGE_HZ[1],
                            frame_period=frame_period_ms)
    f0 = pyworld.stonemask(signal, f0, times, sample_rate)
    envelope = pyworld.cheaptrick(signal, f0, times, sample_rate)
    aperiodicity = pyworld.d4c(signal, f0, times, sample_rate)
    return pyworld.synthesize(f0, envelope, aperiodicity, sample_rate, frame_period_ms).astype(np.float32)


def griffinlim_resynthesis(waveform: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """Griffin-Lim phase reconstruction from the STFT magnitude (phase discarded)."""
    magnitude = np.abs(librosa.stft(waveform, n_fft=512, hop_length=128))
    rebuilt = librosa.griffinlim(magnitude, n_iter=32, hop_length=128, n_fft=512, random_state=seed,
                                 length=len(waveform))
    return rebuilt.astype(np.float32)


def lpc_resynthesis(waveform: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """Source-filter vocoder: SWIPE pitch drives a pulse/noise excitation through a per-frame LPC all-pole filter."""
    signal = _dithered(waveform, seed)
    frames = librosa.util.frame(np.pad(signal, _FRAME // 2), frame_length=_FRAME, hop_length=_HOP).T
    lpc = pysptk.lpc(frames * pysptk.blackman(_FRAME), order=_LPC_ORDER)  # (frames, order + 1), gain first
    lpc[:, 0] = np.log(np.maximum(lpc[:, 0], 1e-10))
    pitch = pysptk.swipe(signal, fs=sample_rate, hopsize=_HOP, min=_F0_RANGE_HZ[0], max=_F0_RANGE_HZ[1],
                         otype="pitch")
    count = min(len(pitch), len(lpc))
    excitation = _pulse_noise_excitation(pitch[:count], np.random.default_rng(seed))
    rebuilt = Synthesizer(AllPoleDF(order=_LPC_ORDER), _HOP).synthesis(excitation, lpc[:count])
    return librosa.util.fix_length(rebuilt, size=len(waveform)).astype(np.float32)


def _pulse_noise_excitation(pitch_periods: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit-power excitation: a pulse every pitch period in voiced frames, seeded white noise in unvoiced ones.

    (pysptk.excite keeps noise state between calls, so its output depends on what ran before.)
    """
    period = np.repeat(pitch_periods.astype(np.float64), _HOP)  # (samples,), 0 = unvoiced
    voiced = period > 0
    phase = np.cumsum(np.where(voiced, 1.0 / np.maximum(period, 1.0), 0.0))
    pulses = np.diff(np.floor(phase), prepend=0.0) > 0
    return np.where(voiced, pulses * np.sqrt(np.maximum(period, 1.0)), rng.standard_normal(len(period)))


COPY_SYNTHESISERS = {
    "world-copysynth": world_resynthesis,
    "griffinlim-copysynth": griffinlim_resynthesis,
    "lpc-copysynth": lpc_resynthesis,
}
