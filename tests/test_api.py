"""The Python API: `from deepfake_detector import Detector`, Detector.load(path).predict(file_or_array, sr)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from conftest import PROJECT_ROOT, write_tone
from tiny_detector import save_tiny_detector

from deepfake_detector import Detector, ModelError
from deepfake_detector.cli import main as cli_main


@pytest.fixture(scope="module")
def detector_path(tmp_path_factory):
    return save_tiny_detector(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def detector(detector_path):
    return Detector.load(detector_path)


def test_predict_on_a_file_returns_the_record_the_cli_writes(detector, detector_path, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 2.5, noise=0.1)
    result = detector.predict(clip)
    assert cli_main(["predict", str(clip), "--model", str(detector_path), "--json", str(tmp_path / "out.json")]) == 0
    (from_cli,) = json.loads((tmp_path / "out.json").read_text())
    assert result == from_cli
    assert result["error"] is None and result["label"] in ("real", "fake") and len(result["windows"]) == 3
    assert result["label"] == ("fake" if result["p_fake"] >= detector.threshold else "real")


def test_an_array_with_its_rate_scores_as_the_same_audio_in_a_file(detector, tmp_path):
    rng = np.random.default_rng(1)
    waveform = (0.3 * rng.standard_normal(16000 * 2)).astype(np.float32)
    soundfile.write(tmp_path / "noise.flac", waveform, 16000)
    from_file = detector.predict(tmp_path / "noise.flac")
    from_array = detector.predict(waveform, sr=16000)
    assert from_array["file"] is None and from_array["duration_s"] == pytest.approx(2.0)
    # FLAC is lossless at 24 bits here, so the two differ only by quantisation.
    assert from_array["p_fake"] == pytest.approx(from_file["p_fake"], abs=1e-4)
    stereo = np.stack([waveform, waveform], axis=1)
    assert detector.predict(stereo, sr=16000)["p_fake"] == pytest.approx(from_array["p_fake"], abs=1e-6)


def test_an_array_without_a_rate_is_taken_at_the_models_rate(detector):
    rate = detector.params.sample_rate
    waveform = 0.3 * np.sin(2 * np.pi * 300 * np.arange(int(1.5 * rate)) / rate)
    assert detector.predict(waveform)["duration_s"] == pytest.approx(1.5)
    assert detector.predict(waveform, sr=rate // 2)["duration_s"] == pytest.approx(3.0)


def test_bad_input_gives_a_reason_not_an_exception(detector, tmp_path):
    assert "silent" in detector.predict(np.zeros(30000))["error"]
    assert detector.predict(tmp_path / "missing.wav")["error"] == "file not found"
    with pytest.raises(ValueError, match="arrays only"):
        detector.predict(tmp_path / "missing.wav", sr=16000)
    with pytest.raises(ValueError, match="shape"):
        detector.predict(np.zeros((2, 2, 2)))


def test_load_refuses_a_model_without_its_metadata(detector_path, tmp_path):
    lone = tmp_path / "lone.keras"
    lone.write_bytes(detector_path.read_bytes())
    with pytest.raises(ModelError, match="metadata"):
        Detector.load(lone)


def test_importing_the_api_does_not_load_tensorflow():
    code = ("import sys; import deepfake_detector; from deepfake_detector import Detector, ModelError; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=PROJECT_ROOT, env={"PYTHONPATH": str(PROJECT_ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_explain_reports_regions_for_the_windows_predict_scored(detector, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 2.5, noise=0.1)
    windows = detector.predict(clip)["windows"]
    explanation = detector.explain(clip, method="occlusion", max_windows=2)
    assert explanation["method"] == "occlusion" and len(explanation["windows"]) == 2
    by_start = {window["start"]: window["p_fake"] for window in windows}
    most_suspect = sorted(by_start.values(), reverse=True)[:2]
    assert sorted((window["p_fake"] for window in explanation["windows"]), reverse=True) == pytest.approx(most_suspect,
                                                                                                          abs=1e-5)
    for window in explanation["windows"]:
        assert window["p_fake"] == pytest.approx(by_start[window["start"]], abs=1e-5)
        assert window["regions"] and all(0 <= region["low_hz"] < region["high_hz"] for region in window["regions"])
    json.dumps(explanation)  # plain data, no arrays
