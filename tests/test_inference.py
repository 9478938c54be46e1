"""Scoring files and waveforms: window layout, aggregation, bad inputs, and raw audio == rendered PNG."""
import numpy as np
import pytest
import soundfile

from conftest import write_tone
from deepfake_detector.data import features
from deepfake_detector.model import inference, model_store
from deepfake_detector.model.inference import RESULT_KEYS
from tiny_detector import TINY_PARAMS, save_tiny_detector


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return model_store.load_detector(save_tiny_detector(tmp_path_factory.mktemp("model")))


def window_spans(result):
    return [(round(w["start"], 4), round(w["end"], 4)) for w in result["windows"]]


def test_clip_shorter_than_a_window_gives_one_window_over_the_clip(detector, tmp_path):
    result = inference.predict_file(detector, write_tone(tmp_path / "short.wav", 0.7))
    assert set(result) == set(RESULT_KEYS)
    assert result["error"] is None
    assert window_spans(result) == [(0.0, 0.7)]
    assert result["duration_s"] == pytest.approx(0.7)
    assert 0.0 <= result["p_fake"] <= 1.0
    assert result["label"] == ("fake" if result["p_fake"] >= 0.5 else "real")
    assert result["model"] == "tiny" and result["threshold"] == 0.5


def test_clip_of_exactly_one_window(detector, tmp_path):
    result = inference.predict_file(detector, write_tone(tmp_path / "one.wav", TINY_PARAMS.window_s))
    assert window_spans(result) == [(0.0, 1.0)]
    assert result["p_fake"] == pytest.approx(result["windows"][0]["p_fake"])


def test_many_windows_cover_the_tail_and_follow_the_hop(detector, tmp_path):
    clip = write_tone(tmp_path / "long.wav", 3.3, noise=0.05)
    default = inference.predict_file(detector, clip)
    assert window_spans(default) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (2.3, 3.3)]
    half_hop = inference.predict_file(detector, clip, hop_s=0.5)
    assert [start for start, _ in window_spans(half_hop)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.3]
    window_scores = [w["p_fake"] for w in default["windows"]]
    assert default["p_fake"] == pytest.approx(np.mean(window_scores))
    for rule in ("max", "median"):
        result = inference.predict_file(detector, clip, aggregate_rule=rule)
        assert result["p_fake"] == pytest.approx(inference.aggregate(window_scores, rule))


def test_label_follows_the_stored_threshold(tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 1.0)
    for threshold, label in ((0.0, "fake"), (1.01, "real")):
        detector = model_store.load_detector(save_tiny_detector(tmp_path / str(threshold), threshold=threshold))
        assert inference.predict_file(detector, clip)["label"] == label


def test_calibration_is_applied_to_window_scores(detector, tmp_path):
    calibration = {"method": "platt", "slope": 2.0, "intercept": -0.5}
    calibrated = model_store.load_detector(save_tiny_detector(tmp_path, calibration=calibration))
    clip = write_tone(tmp_path / "clip.wav", 1.0)
    raw = inference.predict_file(detector, clip)["p_fake"]  # same seeded weights, no calibration
    expected = model_store.platt_apply(np.array([raw]), 2.0, -0.5)[0]
    assert inference.predict_file(calibrated, clip)["p_fake"] == pytest.approx(expected, abs=1e-6)


def test_bad_files_get_errors_while_good_files_in_the_same_call_succeed(detector, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 20)
    soundfile.write(str(tmp_path / "silent.wav"), np.zeros(16000, dtype=np.float32), 16000)
    write_tone(tmp_path / "tiny.wav", 0.2)
    write_tone(tmp_path / "good.wav", 1.5)
    names = ["empty.wav", "text.wav", "silent.wav", "tiny.wav", "missing.wav", "good.wav"]
    results = [result for result, _ in inference.predict_files(detector, [tmp_path / n for n in names])]
    errors = {name: result["error"] for name, result in zip(names, results)}
    assert "empty" in errors["empty.wav"]
    assert "not a readable audio file" in errors["text.wav"] or "ffmpeg" in errors["text.wav"]
    assert "silent" in errors["silent.wav"]
    assert "too short" in errors["tiny.wav"]
    assert "not found" in errors["missing.wav"]
    assert errors["good.wav"] is None and results[-1]["label"] in ("real", "fake")
    for result in results[:-1]:
        assert set(result) == set(RESULT_KEYS)
        assert result["label"] is None and result["p_fake"] is None and result["windows"] == []


def test_score_waveform_rejects_silence_without_raising(detector):
    result = inference.score_waveform(detector, np.zeros(TINY_PARAMS.sample_rate, dtype=np.float32))
    assert result["error"].startswith("silent") and result["label"] is None and result["file"] is None


def test_raw_clip_scores_exactly_like_its_rendered_png(detector, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 1.0, frequency=700.0, noise=0.1, seed=3)
    waveform, _ = inference.audio.load_audio(clip, detector.params)
    images, _ = features.waveform_to_images(waveform, detector.params)
    features.save_png(images[0], tmp_path / "clip.png")
    picture = features.load_png(tmp_path / "clip.png")[None]  # (1, n_mels, frames, 3)
    png_score = detector.calibrate(np.asarray(detector.model.predict_on_batch(picture)).ravel())[0]
    assert inference.predict_file(detector, clip)["p_fake"] == pytest.approx(png_score, abs=1e-6)


def test_a_different_window_is_refused_and_hop_must_be_positive(detector):
    with pytest.raises(ValueError, match="trained on 1 s windows"):
        inference.inference_params(detector, window_s=4.0)
    assert inference.inference_params(detector, hop_s=0.25, window_s=1.0).hop_s == 0.25
    with pytest.raises(ValueError, match="positive"):
        inference.inference_params(detector, hop_s=0.0)


def test_find_audio_files_searches_folders_recursively(tmp_path):
    inner = write_tone(tmp_path / "data" / "a" / "b" / "x.flac", 0.6)
    outer = write_tone(tmp_path / "data" / "y.wav", 0.6)
    (tmp_path / "data" / "notes.txt").write_text("not audio")
    explicit = tmp_path / "given.txt"
    assert inference.find_audio_files([tmp_path / "data", explicit]) == [inner, outer, explicit]


def test_plot_timeline_writes_a_png(detector, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 2.5, noise=0.05)
    result, waveform = inference.load_and_score(detector, clip)
    inference.plot_timeline(result, waveform, detector.params, tmp_path / "plots" / "clip.png")
    height, width, _ = features.load_png(tmp_path / "plots" / "clip.png").shape
    assert width > 500 and height > 300


def test_flagged_spans_merge_overlapping_windows_over_threshold():
    windows = [{"start": 0.0, "end": 1.0, "p_fake": 0.9}, {"start": 0.5, "end": 1.5, "p_fake": 0.7},
               {"start": 1.0, "end": 2.0, "p_fake": 0.1}, {"start": 2.0, "end": 3.0, "p_fake": 0.6}]
    assert inference.flagged_spans(windows, 0.6) == [(0.0, 1.5), (2.0, 3.0)]


def brightness_detector(calibration: dict) -> model_store.Detector:
    """A detector whose raw score is the picture's mean brightness: windows of different content differ a lot."""
    import keras

    pictures = keras.Input(shape=TINY_PARAMS.png_shape, dtype="uint8")
    scaled = keras.layers.Rescaling(1.0 / (255.0 * 3))(pictures)
    brightness = keras.layers.Dense(1, kernel_initializer="ones", use_bias=False)(
        keras.layers.GlobalAveragePooling2D()(scaled))
    metadata = {"name": "brightness", "threshold": 0.5, "calibration": calibration}
    return model_store.Detector(keras.Model(pictures, brightness), metadata, TINY_PARAMS, None)


def test_file_score_is_the_calibrated_mean_of_raw_window_scores_as_in_training():
    # Training calibrates a file's mean raw window score; prediction must do the same, not average calibrated
    # window probabilities (they differ when a file's windows score differently).
    detector = brightness_detector({"method": "platt", "slope": 3.0, "intercept": 1.0})
    rate = TINY_PARAMS.sample_rate
    rng = np.random.default_rng(3)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate)
    waveform = np.concatenate([0.1 * rng.standard_normal(rate), tone, 0.1 * rng.standard_normal(rate)])
    result = inference.score_waveform(detector, waveform.astype(np.float32))
    images, _ = features.waveform_to_images(waveform.astype(np.float32), TINY_PARAMS)
    window_raw = np.asarray(detector.model.predict_on_batch(images)).ravel()
    assert len(result["windows"]) == len(window_raw) == 4
    assert window_raw.max() - window_raw.min() > 0.2  # the windows really differ
    expected = model_store.platt_apply(np.array([window_raw.mean()]), 3.0, 1.0)[0]
    assert result["p_fake"] == pytest.approx(expected, abs=1e-6)
    assert abs(result["p_fake"] - model_store.platt_apply(window_raw, 3.0, 1.0).mean()) > 1e-3
    assert [w["p_fake"] for w in result["windows"]] == pytest.approx(model_store.platt_apply(window_raw, 3.0, 1.0),
                                                                     abs=1e-6)


def test_score_curve_averages_the_windows_covering_each_half_second_by_overlap():
    windows = [{"start": 0.0, "end": 1.0, "p_fake": 0.2}, {"start": 0.5, "end": 1.5, "p_fake": 0.8},
               {"start": 1.0, "end": 2.0, "p_fake": 0.4}, {"start": 1.1, "end": 2.1, "p_fake": 0.6}]
    curve = inference.score_curve(windows, 2.1)
    assert [(segment["start"], segment["end"]) for segment in curve] == [(0, 0.5), (0.5, 1), (1, 1.5), (1.5, 2),
                                                                         (2, 2.1)]
    scores = [segment["p_fake"] for segment in curve]
    assert scores[0] == pytest.approx(0.2)
    assert scores[1] == pytest.approx(0.5)
    assert scores[2] == pytest.approx((0.8 * 0.5 + 0.4 * 0.5 + 0.6 * 0.4) / 1.4)
    assert scores[3] == pytest.approx(0.5)
    assert scores[4] == pytest.approx(0.6)


def test_suspect_span_grows_from_the_peak_while_segments_stay_nearer_the_peak_than_the_median():
    scores = [0.1, 0.1, 0.2, 0.7, 0.9, 0.6, 0.3, 0.1]
    curve = [{"start": i * 0.5, "end": (i + 1) * 0.5, "p_fake": p} for i, p in enumerate(scores)]
    span = inference.suspect_span(curve)  # median 0.25, peak 0.9: segments >= 0.575 join
    assert (span["start"], span["end"]) == (1.5, 3.0)
    assert span["p_fake"] == pytest.approx((0.7 + 0.9 + 0.6) / 3)
    flat = [{**segment, "p_fake": 0.4} for segment in curve]
    assert (inference.suspect_span(flat)["start"], inference.suspect_span(flat)["end"]) == (0.0, 4.0)
    assert inference.suspect_span([]) is None


def test_results_carry_the_curve_and_its_suspect_span(detector, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 3.3, noise=0.05)
    result = inference.predict_file(detector, clip, hop_s=0.5)
    assert result["curve"] == inference.score_curve(result["windows"], result["duration_s"])
    assert len(result["curve"]) == 7 and result["curve"][-1]["end"] == pytest.approx(3.3)
    assert result["suspect_span"] == inference.suspect_span(result["curve"])


def test_linear_model_reads_its_scale_from_the_model_and_scores_a_raw_clip_like_its_png(tmp_path):
    from deepfake_detector.data import spectrograms

    linear = TINY_PARAMS.replace(scale="linear")
    detector = model_store.load_detector(save_tiny_detector(tmp_path / "model", params=linear))
    assert detector.params.scale == "linear"
    clip = write_tone(tmp_path / "audio" / "real" / "clip.wav", 1.0, frequency=5000.0, noise=0.1, seed=4)
    scores = {}
    for scale in ("linear", "mel"):  # rendered the way `render --scale` does
        spectrograms.generate(tmp_path / "audio", tmp_path / scale, TINY_PARAMS.replace(scale=scale),
                              progress=False)
        picture = features.load_png(next((tmp_path / scale / "images").rglob("*.png")))[None]
        scores[scale] = detector.calibrate(np.asarray(detector.model.predict_on_batch(picture)).ravel())[0]
    assert inference.predict_file(detector, clip)["p_fake"] == pytest.approx(scores["linear"], abs=1e-6)
    assert scores["mel"] != pytest.approx(scores["linear"], abs=1e-6)  # the mel picture would score otherwise
