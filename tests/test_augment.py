"""Waveform augmentations keep length and dtype and change the signal as documented; rendering is resumable."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import write_tone
from deepfake_detector.data import augment, features
from deepfake_detector.io_utils import sha256_file
from deepfake_detector.params import Params

RATE = 22050


def tone(frequency=440.0, seconds=1.0, amplitude=0.5, sample_rate=RATE):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def speech_like(seconds=1.0, seed=0):
    """Harmonics of 150 Hz, syllable-rate amplitude modulation, a quiet noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * voiced * envelope + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def peak_frequency(waveform, sample_rate=RATE):
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return np.fft.rfftfreq(len(waveform), 1 / sample_rate)[np.argmax(spectrum)]


def snr_db(clean, noisy):
    return 20 * np.log10(augment.rms(clean) / augment.rms(noisy - clean))


@pytest.mark.parametrize("name", list(augment.AUGMENTATIONS))
def test_every_augmentation_keeps_length_and_dtype_and_changes_the_signal(name):
    clean = speech_like()
    out = augment.AUGMENTATIONS[name](clean, RATE, np.random.default_rng(1))
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and not np.array_equal(out, clean)


@pytest.mark.parametrize("kind", augment.NOISE_KINDS)
def test_noise_has_the_requested_snr(kind):
    clean = speech_like()
    noisy = augment.add_noise(clean, RATE, np.random.default_rng(2), snr_db=12.0, kind=kind)
    assert abs(snr_db(clean, noisy) - 12.0) < 0.5


def test_background_noise_from_another_clip_has_the_requested_snr():
    clean, other = speech_like(seed=0), speech_like(seconds=0.4, seed=5)
    noisy = augment.add_noise(clean, RATE, np.random.default_rng(3), snr_db=20.0, kind="background",
                              noise_source=other)
    assert abs(snr_db(clean, noisy) - 20.0) < 0.5


def test_pink_noise_falls_by_about_3_db_per_octave():
    noise = augment.pink_noise(2 ** 18, np.random.default_rng(4))
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(len(noise), 1 / RATE)
    band = lambda low: power[(frequencies >= low) & (frequencies < 2 * low)].mean()  # noqa: E731
    assert 10 * np.log10(band(500) / band(1000)) == pytest.approx(3.0, abs=0.5)


def test_gain_scales_rms_and_the_limiter_stops_clipping():
    quiet = tone(amplitude=0.05)
    louder = augment.gain(quiet, RATE, np.random.default_rng(0), gain_db=6.0)
    assert augment.rms(louder) / augment.rms(quiet) == pytest.approx(10 ** (6 / 20), rel=1e-4)
    limited = augment.gain(tone(amplitude=0.5), RATE, np.random.default_rng(0), gain_db=12.0)
    assert np.abs(limited).max() <= 0.99


def test_telephone_removes_energy_above_4_khz():
    broadband = (0.1 * np.random.default_rng(6).standard_normal(RATE)).astype(np.float32)
    narrow = augment.telephone(broadband, RATE, np.random.default_rng(0), band_pass=False)

    def high_band_energy(waveform):
        spectrum = np.abs(np.fft.rfft(waveform)) ** 2
        return spectrum[np.fft.rfftfreq(len(waveform), 1 / RATE) > 4200].sum()

    assert 10 * np.log10(high_band_energy(broadband) / high_band_energy(narrow)) > 20


@pytest.mark.parametrize("codec", list(augment.CODECS))
def test_codec_round_trip_is_close_but_not_identical(codec):
    if codec not in augment.available_codecs():
        pytest.skip(f"ffmpeg lacks the {codec} encoder")
    clean = speech_like()
    decoded = augment.codec_round_trip(clean, RATE, codec, augment.CODECS[codec][2][0])
    assert decoded.shape == clean.shape and decoded.dtype == np.float32
    assert np.corrcoef(clean, decoded)[0, 1] > 0.8 and not np.allclose(clean, decoded)


def test_codec_without_encoders_warns_and_returns_the_input(monkeypatch):
    monkeypatch.setattr(augment, "_ffmpeg_encoders", lambda: frozenset())
    clean = speech_like()
    with pytest.warns(UserWarning, match="skipping codec"):
        out = augment.codec(clean, RATE, np.random.default_rng(0))
    assert np.array_equal(out, clean)
    with pytest.raises(augment.CodecUnavailable):
        augment.corrupt(clean, RATE, "mp3_64k")


def test_pitch_shift_moves_a_tone_by_the_semitone_ratio():
    shifted = augment.pitch_shift(tone(), RATE, np.random.default_rng(0), semitones=2.0)
    assert peak_frequency(shifted) == pytest.approx(440 * 2 ** (2 / 12), rel=0.01)


def test_time_stretch_keeps_length_and_pitch():
    stretched = augment.time_stretch(tone(), RATE, np.random.default_rng(0), rate=0.9)
    assert len(stretched) == RATE and peak_frequency(stretched) == pytest.approx(440, rel=0.01)


def decay_time_s(waveform, drop_db=30.0):
    """Time after the peak until the Schroeder backward-integrated energy falls by drop_db."""
    energy = np.cumsum(np.square(waveform[::-1], dtype=np.float64))[::-1]
    decay_db = 10 * np.log10(energy / energy[0] + 1e-30)
    return np.argmax(decay_db < -drop_db) / RATE


def test_reverb_lengthens_the_decay_of_an_impulse():
    impulse = np.zeros(RATE, np.float32)
    impulse[0] = 1.0
    wet = augment.reverb(impulse, RATE, np.random.default_rng(0), rt60_s=0.6, direct_to_reverb_db=0.0)
    assert decay_time_s(impulse) < 0.001
    # 30 dB is half of the 60 dB that defines RT60 (the direct path makes the first few dB drop faster).
    assert decay_time_s(wet) == pytest.approx(0.3, rel=0.2)
    assert augment.rms(wet) == pytest.approx(augment.rms(impulse), rel=1e-4)


def test_augment_waveform_is_deterministic_for_a_seed():
    config = augment.AugmentConfig(augmentations=augment.AUGMENTATION_NAMES, probability=1.0)
    clean = speech_like()
    first = augment.augment_waveform(clean, RATE, config, np.random.default_rng(7))
    again = augment.augment_waveform(clean, RATE, config, np.random.default_rng(7))
    other = augment.augment_waveform(clean, RATE, config, np.random.default_rng(8))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.shape == clean.shape and np.abs(first).max() <= 0.99


def test_augment_waveform_always_changes_something():
    config = augment.AugmentConfig(augmentations=("gain",), probability=0.0)
    clean = speech_like()
    assert not np.array_equal(augment.augment_waveform(clean, RATE, config, np.random.default_rng(0)), clean)


@pytest.mark.parametrize("kind", augment.CORRUPTIONS)
def test_corruptions_are_fixed(kind):
    clean = speech_like()
    first, again = augment.corrupt(clean, RATE, kind), augment.corrupt(clean, RATE, kind)
    assert np.array_equal(first, again) and first.shape == clean.shape and not np.array_equal(first, clean)
    if kind == "noise10db":
        assert abs(snr_db(clean, first) - 10.0) < 0.5


def test_parse_augment_names_and_config_round_trip():
    assert augment.parse_augment_names("all") == augment.AUGMENTATION_NAMES
    assert augment.parse_augment_names("none") == augment.parse_augment_names("") == ()
    assert augment.parse_augment_names("codec, noise,specaugment") == ("noise", "codec", "specaugment")
    with pytest.raises(ValueError, match="echo"):
        augment.parse_augment_names("noise,echo")
    config = augment.AugmentConfig(augmentations=("noise", "specaugment"), copies=3, seed=5)
    assert augment.AugmentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    params = Params()
    # More copies or other masks reuse the rendered copies; other waveform settings do not.
    assert config.waveform_hash(params) == augment.AugmentConfig(augmentations=("noise",), seed=5).waveform_hash(params)
    assert config.waveform_hash(params) != augment.AugmentConfig(augmentations=("noise",), seed=6).waveform_hash(params)


def test_cli_flags_give_a_config():
    import argparse

    parser = argparse.ArgumentParser()
    augment.add_augment_arguments(parser)
    args = parser.parse_args(["--augment", "noise,reverb", "--augment-copies", "2"])
    config = augment.config_from_args(args, seed=9)
    assert config.waveform_augmentations == ("reverb", "noise") and config.copies == 2 and config.seed == 9


def test_spec_augment_masks_bands_with_the_darkest_colour_only():
    import tensorflow as tf

    lut = features.magma_lut()
    images = np.broadcast_to(lut[200], (4, 128, 173, 3)).copy()
    config = augment.AugmentConfig(time_masks=2, time_mask_max=30, freq_masks=2, freq_mask_max=20)
    out = augment.spec_augment(tf.constant(images), config, seed=3).numpy()
    assert out.shape == images.shape and out.dtype == np.uint8
    changed = np.any(out != images, axis=-1)  # (4, H, W)
    assert changed.any()
    assert np.all(out[changed] == lut[0])
    for picture in changed:
        full_columns, full_rows = picture.all(axis=0), picture.all(axis=1)
        assert np.array_equal(picture, full_columns[None, :] | full_rows[:, None])  # whole bands only
    again = augment.spec_augment(tf.constant(images), config, seed=3).numpy()
    assert np.array_equal(out, again)
    single = augment.spec_augment(tf.constant(images[0]), config, seed=3)
    assert single.shape == images.shape[1:] and single.dtype == tf.uint8


def test_make_spec_augment_runs_in_a_dataset_map():
    import tensorflow as tf

    lut = features.magma_lut()
    images = np.broadcast_to(lut[255], (6, 32, 40, 3)).copy()
    config = augment.AugmentConfig(freq_mask_max=8, time_mask_max=8)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(6, np.float32)))
    dataset = dataset.map(augment.make_spec_augment(config), num_parallel_calls=tf.data.AUTOTUNE).batch(6)
    batch, _ = next(iter(dataset))
    assert batch.shape == images.shape and batch.dtype == tf.uint8
    masked = np.any(batch.numpy() != images, axis=-1)
    assert len({picture.tobytes() for picture in masked}) > 1  # each picture draws its own masks


def make_data_folder(tmp_path):
    """Three short source files (two train, one val) and the split table that lists their windows."""
    rows = []
    for name, split, klass, frequency in (("a", "train", "real", 300), ("b", "train", "fake", 500),
                                          ("c", "val", "real", 700)):
        source = write_tone(tmp_path / "audio" / f"{name}.wav", 1.2, frequency, sample_rate=RATE, noise=0.01)
        for window in range(2):
            rows.append({"png_path": f"images/{klass}/{name}_w{window}.png", "class": klass, "split": split,
                         "source_path": str(source), "source_sha256": sha256_file(source), "group": name})
    return tmp_path / "data", pd.DataFrame(rows)


def test_render_augmented_copies_renders_train_files_once(tmp_path, monkeypatch):
    data_dir, table = make_data_folder(tmp_path)
    params = Params(window_s=1.0, hop_s=1.0)
    config = augment.AugmentConfig(augmentations=("noise", "gain"), copies=2, seed=1)
    rows = augment.render_augmented_copies(table, data_dir, params, config, jobs=2)
    assert list(rows.columns) == augment.SPLIT_COLUMNS and set(rows["split"]) == {"train"}
    assert set(rows["group"]) == {"a", "b"}  # the val file is never augmented
    # 1.2 s gives two 1 s windows; two copies of two files.
    assert len(rows) == 2 * 2 * 2 and rows["png_path"].is_unique
    for png_path in rows["png_path"]:
        assert features.load_png(data_dir / png_path).shape == params.png_shape
    assert json.loads((augment.augmented_dir(data_dir, params, config) / "config.json").read_text())["copies"] == 2

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished copy was rendered again")

    monkeypatch.setattr(augment.audio, "load_audio", must_not_run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = augment.render_augmented_copies(table, data_dir, params, config, jobs=1)
    pd.testing.assert_frame_equal(again, rows)
