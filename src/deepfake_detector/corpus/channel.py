"""The random recording channel that every clip of both classes goes through, so the channel cannot tell the class.

The real sources carry strong channel marks (11 kHz MP3 game speech, 8-bit PCM, 8 kHz telephone prompts) that the
synthesisers do not share. Each clip, real or fake, draws its own channel from one distribution: a band limit,
one codec (none, MP3, Ogg Vorbis, 8 kHz mu-law, 8-bit PCM) and maybe background noise. Vocoded copies also inherit
their source's marks, since they are made from the recording itself.

Two corpus bands: "narrow" cuts every clip to 3.4-5.5 kHz, under the bandwidth of the narrowest real sources, so
they do not stand out; "wide" keeps up to 6.5-7.8 kHz (the 4-8 kHz band where neural vocoders leave much of their
trace, and where the speech people bring has energy) and is only fair with real sources recorded at 16 kHz or more.
"""
from __future__ import annotations

import dataclasses
import io

import librosa
import numpy as np
import soundfile
import soxr
from scipy.signal import butter, sosfiltfilt

# Every clip is band-limited to a cutoff drawn from its band's range (see the module docstring).
BAND_LIMITS_HZ = {"narrow": (3400.0, 5500.0), "wide": (6500.0, 7800.0)}
CODECS = ("none", "mp3", "vorbis", "mulaw8k", "pcm8")
NOISE_PROBABILITY = 0.5
SNR_RANGE_DB = (20.0, 45.0)
MP3_BITRATES = (0.3, 0.6, 0.9)   # libsndfile compression levels (0 = best)


@dataclasses.dataclass(frozen=True)
class Channel:
    bandwidth_hz: float
    codec: str
    snr_db: float | None   # None = no added noise
    noise_seed: int

    def describe(self) -> str:
        noise = f"+noise{self.snr_db:.0f}dB" if self.snr_db is not None else ""
        return f"lp{self.bandwidth_hz / 1000:.1f}k+{self.codec}{noise}"


def draw_channel(rng: np.random.Generator, band: str = "narrow") -> Channel:
    """One channel from the distribution shared by both classes."""
    bandwidth = float(rng.uniform(*BAND_LIMITS_HZ[band]))
    codec = str(rng.choice(CODECS))
    snr = float(rng.uniform(*SNR_RANGE_DB)) if rng.random() < NOISE_PROBABILITY else None
    return Channel(round(bandwidth), codec, None if snr is None else round(snr, 1), int(rng.integers(2**31)))


def _low_pass(waveform: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    if cutoff_hz >= sample_rate / 2 * 0.98:
        return waveform
    sos = butter(8, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, waveform)


def _codec_round_trip(waveform: np.ndarray, sample_rate: int, codec: str, rng: np.random.Generator) -> np.ndarray:
    if codec == "none":
        return waveform
    peak = max(float(np.max(np.abs(waveform))), 1e-9)
    scaled = 0.9 * waveform / peak   # codecs and quantisers work at a fixed headroom; the level is restored after
    if codec in ("mp3", "vorbis"):
        buffer = io.BytesIO()
        level = float(rng.choice(MP3_BITRATES))
        kind = ("MP3", "MPEG_LAYER_III") if codec == "mp3" else ("OGG", "VORBIS")
        soundfile.write(buffer, scaled.astype(np.float32), sample_rate, format=kind[0], subtype=kind[1],
                        compression_level=level)
        buffer.seek(0)
        coded = soundfile.read(buffer, dtype="float32")[0]
    elif codec == "mulaw8k":
        narrow = soxr.resample(scaled.astype(np.float32), sample_rate, 8000)
        companded = librosa.mu_expand(librosa.mu_compress(np.clip(narrow, -1, 1), mu=255, quantize=True),
                                      mu=255, quantize=True)
        coded = soxr.resample(companded.astype(np.float32), 8000, sample_rate)
    elif codec == "pcm8":
        coded = np.round(scaled * 127.0) / 127.0
    else:
        raise ValueError(f"unknown codec {codec!r}")
    return librosa.util.fix_length(np.asarray(coded, dtype=np.float64), size=len(waveform)) * peak / 0.9


def apply_channel(waveform: np.ndarray, sample_rate: int, channel: Channel) -> np.ndarray:
    """Band limit, codec round trip, then noise at the drawn SNR; same length as the input, float64."""
    rng = np.random.default_rng(channel.noise_seed)
    signal = _low_pass(np.asarray(waveform, dtype=np.float64), sample_rate, channel.bandwidth_hz)
    signal = _codec_round_trip(signal, sample_rate, channel.codec, rng)
    if channel.snr_db is not None:
        power = float(np.mean(signal ** 2))
        noise = rng.standard_normal(len(signal))
        noise = _low_pass(noise, sample_rate, channel.bandwidth_hz)
        noise *= np.sqrt(power / 10 ** (channel.snr_db / 10) / max(float(np.mean(noise ** 2)), 1e-20))
        signal = signal + noise
    return signal
