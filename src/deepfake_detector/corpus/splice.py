"""Partly synthetic clips for the localisation benchmark: a real recording with one synthetic stretch inserted.

The splice must not be the clue: the inserted stretch is scaled to the host's loudness (RMS over its active,
non-silent frames) and joined with equal-power cross-fades, and the benchmark builds its "real" control clips by
the very same procedure with a real stretch inserted, so every clip carries the same kind of joins.

    waveform, (start_s, end_s) = insert_segment(host, segment, position, sample_rate)
    clip = make_spliced_clip(hosts, donors, rng, sample_rate)   # lengths and position drawn from rng
"""
from __future__ import annotations

import dataclasses

import numpy as np

# Equal-power cross-fade at each join (sin/cos: the two sides are uncorrelated, so their powers add to one).
FADE_S = 0.03
# Frames quieter than this (relative to the loudest 20 ms frame) are pauses and do not count towards loudness.
ACTIVE_DB = -35.0
PEAK_LIMIT = 0.99


@dataclasses.dataclass(frozen=True)
class SplicedClip:
    waveform: np.ndarray
    fake_start_s: float  # where the inserted stretch is at >= half gain (the middle of each cross-fade)
    fake_end_s: float
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sample_rate


def active_rms(waveform: np.ndarray, sample_rate: int) -> float:
    """RMS over the 20 ms frames within ACTIVE_DB of the loudest frame (pauses would dilute a plain RMS)."""
    frame = max(1, int(0.02 * sample_rate))
    usable = len(waveform) // frame * frame
    frames = waveform[:usable].reshape(-1, frame) if usable else waveform[None]
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    if power.max() <= 0:
        return 0.0
    return float(np.sqrt(power[power >= power.max() * 10 ** (ACTIVE_DB / 10)].mean()))


def match_loudness(segment: np.ndarray, reference: np.ndarray, sample_rate: int) -> np.ndarray:
    """`segment` scaled so its active RMS equals `reference`'s."""
    level = active_rms(segment, sample_rate)
    if level <= 0:
        raise ValueError("the segment to insert is silent")
    return segment * (active_rms(reference, sample_rate) / level)


def crossfade_join(first: np.ndarray, second: np.ndarray, fade: int) -> np.ndarray:
    """first + second overlapped by `fade` samples with an equal-power cross-fade."""
    if fade == 0:
        return np.concatenate([first, second])
    if min(len(first), len(second)) < fade:
        raise ValueError(f"both sides of a join need at least {fade} samples")
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)
    overlap = first[-fade:] * ramp[::-1] + second[:fade] * ramp
    return np.concatenate([first[:-fade], overlap, second[fade:]])


def concatenate(clips: list[np.ndarray], sample_rate: int, fade_s: float = FADE_S) -> np.ndarray:
    """Clips joined end to end with the same cross-fade, each scaled to the first one's loudness."""
    fade = int(round(fade_s * sample_rate))
    joined = clips[0]
    for clip in clips[1:]:
        joined = crossfade_join(joined, match_loudness(clip, clips[0], sample_rate), fade)
    return joined


def insert_segment(host: np.ndarray, segment: np.ndarray, position: int, sample_rate: int,
                   fade_s: float = FADE_S) -> tuple[np.ndarray, tuple[float, float]]:
    """Insert `segment` (loudness-matched to `host`) into `host` at sample `position`, cross-fading both joins.

    Returns the waveform (peak-limited to PEAK_LIMIT by one gain) and the inserted stretch's span in seconds,
    measured between the middles of the two cross-fades.
    """
    fade = int(round(fade_s * sample_rate))
    if not fade <= position <= len(host) - fade:
        raise ValueError(f"position {position} leaves less than one {fade_s:g} s cross-fade of host on a side")
    if len(segment) < 2 * fade + 1:
        raise ValueError("the segment is shorter than its two cross-fades")
    inserted = match_loudness(segment.astype(np.float64), host, sample_rate)
    waveform = crossfade_join(crossfade_join(host[:position].astype(np.float64), inserted, fade),
                              host[position:].astype(np.float64), fade)
    start = position - fade + fade / 2
    end = position - fade + len(inserted) - fade / 2
    peak = float(np.abs(waveform).max())
    if peak > PEAK_LIMIT:
        waveform = waveform * (PEAK_LIMIT / peak)
    return waveform.astype(np.float32), (start / sample_rate, end / sample_rate)


def make_spliced_clip(host_clips: list[np.ndarray], donor_clips: list[np.ndarray], rng: np.random.Generator,
                      sample_rate: int, min_host_s: float = 8.0, segment_s: tuple[float, float] = (1.0, 3.0),
                      fade_s: float = FADE_S) -> SplicedClip:
    """A host of at least `min_host_s` seconds (host clips joined in order, cycling if needed) with one stretch
    of a length drawn uniformly from `segment_s`, cut from the joined donor clips, inserted at a uniformly drawn
    position at least one second from either end.
    """
    host = _at_least(host_clips, min_host_s, sample_rate, fade_s)
    length = int(round(rng.uniform(*segment_s) * sample_rate))
    donor = _at_least(donor_clips, length / sample_rate, sample_rate, fade_s)
    offset = int(rng.integers(0, len(donor) - length + 1))
    margin = sample_rate  # keep the stretch inside the clip, so it is never just a different start or end
    position = int(rng.integers(margin, len(host) - margin + 1))
    waveform, (start_s, end_s) = insert_segment(host, donor[offset:offset + length], position, sample_rate, fade_s)
    return SplicedClip(waveform, start_s, end_s, sample_rate)


def _at_least(clips: list[np.ndarray], seconds: float, sample_rate: int, fade_s: float) -> np.ndarray:
    """The clips concatenated in order (cycling through them again if needed) until `seconds` long."""
    if not clips or not any(len(clip) for clip in clips):
        raise ValueError("no audio to build from")
    chosen, total, index = [], 0, 0
    fade = int(round(fade_s * sample_rate))
    while total - fade * max(0, len(chosen) - 1) < seconds * sample_rate:
        clip = clips[index % len(clips)]
        chosen.append(clip)
        total += len(clip)
        index += 1
    return concatenate(chosen, sample_rate, fade_s)
