"""scripts/predict.py: output files and their schema, the console table, plots and exit codes."""
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, write_tone
from tiny_detector import save_tiny_detector

SCRIPT = PROJECT_ROOT / "scripts" / "predict.py"
spec = importlib.util.spec_from_file_location("predict_script", SCRIPT)
predict = importlib.util.module_from_spec(spec)
spec.loader.exec_module(predict)

RESULT_TYPES = {"file": str, "label": str, "p_fake": float, "threshold": float, "model": str,
                "duration_s": float, "windows": list, "curve": list, "suspect_span": dict, "error": type(None)}
ERROR_TYPES = {**RESULT_TYPES, "label": type(None), "p_fake": type(None), "duration_s": type(None), "error": str,
               "suspect_span": type(None)}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_tiny_detector(tmp_path_factory.mktemp("model"))


@pytest.fixture
def audio_dir(tmp_path):
    write_tone(tmp_path / "audio" / "a.wav", 2.5, noise=0.05)
    write_tone(tmp_path / "audio" / "nested" / "b.flac", 0.8, frequency=300.0)
    return tmp_path / "audio"


def check_types(result, expected_types):
    assert set(result) == set(expected_types)
    for key, expected in expected_types.items():
        assert isinstance(result[key], expected), (key, result[key])


def test_json_lines_csv_table_and_plots_for_a_folder(model_path, audio_dir, tmp_path, capsys):
    status = predict.main([str(audio_dir), "--model", str(model_path), "--hop", "0.5",
                           "--json", str(tmp_path / "out.jsonl"), "--csv", str(tmp_path / "out.csv"),
                           "--plot", str(tmp_path / "plots")])
    assert status == 0
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["file"] for r in results] == [str(audio_dir / "a.wav"), str(audio_dir / "nested" / "b.flac")]
    for result in results:
        check_types(result, RESULT_TYPES)
        for window in result["windows"]:
            assert set(window) == {"start", "end", "p_fake"} and all(isinstance(v, float) for v in window.values())
    assert len(results[0]["windows"]) == 4  # starts 0, 0.5, 1.0, 1.5; the last ends at 2.5 s
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [row["n_windows"] for row in rows] == ["4", "1"] and rows[0]["label"] == results[0]["label"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["a.png", "b.png"]
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["file", "verdict", "p_fake", "duration", "windows"]
    assert results[0]["label"].upper() in table[1] and "2.50s" in table[1]


def test_json_array_when_the_name_ends_in_json(model_path, audio_dir, tmp_path):
    assert predict.main([str(audio_dir / "a.wav"), "--model", str(model_path), "--json",
                         str(tmp_path / "out.json")]) == 0
    results = json.loads((tmp_path / "out.json").read_text())
    assert isinstance(results, list) and len(results) == 1


def test_a_bad_file_is_reported_and_gives_status_one(model_path, audio_dir, tmp_path, capsys):
    (audio_dir / "broken.wav").write_text("not audio")
    status = predict.main([str(audio_dir), "--model", str(model_path), "--json", str(tmp_path / "out.jsonl")])
    assert status == 1
    results = {r["file"]: r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    check_types(results[str(audio_dir / "broken.wav")], ERROR_TYPES)
    check_types(results[str(audio_dir / "a.wav")], RESULT_TYPES)
    assert "ERROR" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["occlusion", "gradcam"])
def test_explain_writes_an_overlay_per_file_and_regions_into_the_json(model_path, audio_dir, tmp_path, method):
    (audio_dir / "broken.wav").write_text("not audio")
    status = predict.main([str(audio_dir), "--model", str(model_path), "--json", str(tmp_path / "out.json"),
                           "--explain", str(tmp_path / "explained"), "--explain-method", method,
                           "--explain-windows", "2"])
    assert status == 1  # the broken file; the others are still explained
    results = {Path(r["file"]).name: r for r in json.loads((tmp_path / "out.json").read_text())}
    assert "explanation" not in results["broken.wav"]
    assert sorted(p.name for p in (tmp_path / "explained").iterdir()) == ["a.png", "b.png"]
    for name, n_windows in (("a.wav", 2), ("b.flac", 1)):
        explanation = results[name]["explanation"]
        assert explanation["method"] == method and Path(explanation["overlay"]).is_file()
        assert len(explanation["windows"]) == n_windows  # --explain-windows 2 caps a.wav's 3 windows
        for region in explanation["regions"]:
            assert set(region) == {"start", "end", "low_hz", "high_hz", "share"}
            assert 0 <= region["start"] < region["end"] <= results[name]["duration_s"] + 1e-6
            assert 0 <= region["low_hz"] <= region["high_hz"] <= 11025 and 0 < region["share"] <= 1


@pytest.mark.parametrize("flags, message", [
    (["--window", "4"], "trained on 1 s windows"),
    (["--hop", "-1"], "positive"),
    (["--batch-size", "0"], "batch-size"),
    (["--explain-windows", "0"], "explain-windows"),
])
def test_bad_flags_give_status_two(model_path, audio_dir, flags, message, capsys):
    assert predict.main([str(audio_dir), "--model", str(model_path), *flags]) == 2
    assert message in capsys.readouterr().err


def test_model_without_metadata_is_refused(model_path, audio_dir, tmp_path, capsys):
    lonely = tmp_path / "lonely.keras"
    lonely.write_bytes(model_path.read_bytes())
    assert predict.main([str(audio_dir), "--model", str(lonely)]) == 2
    assert "metadata" in capsys.readouterr().err


def test_folder_without_audio_gives_status_two(model_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert predict.main([str(tmp_path / "empty"), "--model", str(model_path)]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_runs_as_a_script_and_ends_with_one_error_line(tmp_path):
    completed = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--model", str(tmp_path / "no.keras")],
                               capture_output=True, text=True, cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1].startswith("error: model file")
