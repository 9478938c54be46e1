"""The spliced-clip builder: where the stretch lands, loudness matching, smooth joins, seeded and checked inputs."""
import numpy as np
import pytest

from deepfake_detector.corpus import splice

RATE = 16000


def tone(seconds: float, frequency: float, amplitude: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (amplitude * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32)


def test_inserted_stretch_lands_at_the_position_with_the_hosts_loudness():
    host = tone(6.0, 220.0, 0.3)
    segment = tone(2.0, 1500.0, 0.05, seed=1)  # much quieter and at another pitch
    waveform, (start_s, end_s) = splice.insert_segment(host, segment, 3 * RATE, RATE)
    fade = splice.FADE_S
    assert len(waveform) == len(host) + len(segment) - 2 * round(fade * RATE)
    assert start_s == pytest.approx(3.0 - fade / 2) and end_s == pytest.approx(5.0 - 1.5 * fade)
    inside = waveform[int((start_s + 0.1) * RATE):int((end_s - 0.1) * RATE)]
    before = waveform[:int((start_s - 0.1) * RATE)]
    after = waveform[int((end_s + 0.1) * RATE):]
    assert splice.active_rms(inside, RATE) == pytest.approx(splice.active_rms(host, RATE), rel=0.02)
    # The stretch is the 1500 Hz tone and the rest is the 220 Hz host.
    for part, frequency in ((inside, 1500), (before, 220), (after, 220)):
        spectrum = np.abs(np.fft.rfft(part))
        assert np.fft.rfftfreq(len(part), 1 / RATE)[np.argmax(spectrum)] == pytest.approx(frequency, abs=2)


def test_joins_are_crossfaded_without_a_jump():
    host = tone(4.0, 200.0, 0.5)
    segment = tone(1.5, 200.0, 0.5, seed=1)
    position = 2 * RATE + 20  # a quarter period past a zero crossing: the host is at its peak, the segment at 0
    waveform, _ = splice.insert_segment(host, segment, position, RATE)
    steepest_host_step = np.abs(np.diff(host)).max()
    assert np.abs(np.diff(waveform)).max() < 1.2 * steepest_host_step
    hard_cut = np.concatenate([host[:position], segment])
    assert np.abs(np.diff(hard_cut)).max() > 5 * steepest_host_step


def test_loud_results_are_peak_limited_by_one_gain():
    host = tone(3.0, 300.0, 0.98)
    segment = tone(1.0, 300.0, 0.2, seed=2) + 0.9 * (np.arange(RATE) % 200 == 0)  # clicks: a high crest
    waveform, _ = splice.insert_segment(host, segment.astype(np.float32), RATE, RATE)
    assert np.abs(waveform).max() <= splice.PEAK_LIMIT + 1e-6


def test_spliced_clips_are_seeded_and_keep_the_stretch_inside_the_clip():
    hosts = [tone(1.0, 200.0 + 20 * i, 0.3, seed=i) for i in range(3)]
    donors = [tone(0.8, 1200.0, 0.1, seed=10 + i) for i in range(2)]
    first = splice.make_spliced_clip(hosts, donors, np.random.default_rng(5), RATE)
    again = splice.make_spliced_clip(hosts, donors, np.random.default_rng(5), RATE)
    other = splice.make_spliced_clip(hosts, donors, np.random.default_rng(6), RATE)
    assert np.array_equal(first.waveform, again.waveform) and first.fake_start_s == again.fake_start_s
    assert (other.fake_start_s, other.duration_s) != (first.fake_start_s, first.duration_s)
    for clip in (first, other):
        length = clip.fake_end_s - clip.fake_start_s + splice.FADE_S
        assert 1.0 <= length <= 3.0 + 1e-6
        assert clip.duration_s >= 8.0 + length - 2 * splice.FADE_S - 1e-3
        assert clip.fake_start_s >= 1.0 - splice.FADE_S and clip.fake_end_s <= clip.duration_s - 1.0


def test_bad_inputs_are_refused_with_a_reason():
    host = tone(2.0, 200.0, 0.3)
    with pytest.raises(ValueError, match="cross-fade"):
        splice.insert_segment(host, tone(1.0, 500.0, 0.3), 10, RATE)
    with pytest.raises(ValueError, match="silent"):
        splice.insert_segment(host, np.zeros(RATE, dtype=np.float32), RATE, RATE)
    with pytest.raises(ValueError, match="no audio"):
        splice.make_spliced_clip([], [host], np.random.default_rng(0), RATE)
