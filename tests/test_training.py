"""Training: threshold and summary helpers, and a 2-epoch smoke run under MirroredStrategy on 2 logical CPUs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_detector import metrics
from deepfake_detector.dataset import data_summary, load_split_table
from deepfake_detector.training import choose_threshold, threshold_at_fpr
from synthetic_spectrograms import make_spectrogram_folder

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRAIN_CNN = PROJECT_ROOT / "src" / "train_cnn.py"


def test_eer_threshold_lies_between_validation_scores():
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    threshold, rule = choose_threshold(labels, scores)
    assert rule == "validation EER"
    assert 0.3 < threshold < 0.7  # halfway on the logit scale, not on the lowest fake score
    assert metrics.threshold_metrics(labels, scores, threshold)["accuracy"] == 1.0


def test_target_fpr_threshold_keeps_false_positives_below_target():
    labels = np.r_[np.zeros(10), np.ones(10)]
    scores = np.r_[np.linspace(0.0, 0.9, 10), np.linspace(0.5, 1.0, 10)]
    for target in (0.0, 0.1, 0.3):
        threshold, rule = choose_threshold(labels, scores, target_fpr=target)
        false_positive_rate = np.mean(scores[labels == 0] >= threshold)
        assert false_positive_rate <= target and f"<= {target:g}" in rule
        # The lowest such threshold on the DET curve: one step lower would exceed the target.
        assert np.mean(scores[labels == 0] >= threshold_at_fpr(labels, scores, target)) <= target


def test_data_summary_counts_files_and_images(tmp_path):
    table = load_split_table(make_spectrogram_folder(tmp_path, files_per_split={"train": 3, "test": 1}))
    summary = data_summary(table)
    # Train file 2 of each class is 1.5 windows long, so it gives two pictures.
    assert summary["train"]["real"] == {"files": 3, "images": 4}
    assert summary["train"]["fake"] == {"files": 3, "images": 4}
    assert summary["test"]["fake"] == {"files": 1, "images": 1}


def test_cli_reports_a_bad_folder_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(TRAIN_CNN), "--data", str(tmp_path)], capture_output=True,
                            text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: ") and "params.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data_dir = make_spectrogram_folder(root / "spectrograms")
    command = [sys.executable, str(TRAIN_CNN), "--data", str(data_dir), "--devices", "2", "--epochs", "2",
               "--batch-size", "4", "--name", "smoke", "--models-dir", str(root / "models"),
               "--plots-dir", str(root / "plots")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, data_dir, result.stdout


@pytest.mark.slow
def test_smoke_run_uses_two_replicas_and_writes_every_output(trained):
    root, _, stdout = trained
    assert "MirroredStrategy with 2 replica(s)" in stdout
    for name in ("smoke.keras", "smoke.json", "smoke_metrics.json", "smoke_history.csv", "smoke_test_scores.csv",
                 "smoke.checkpoint.keras"):
        assert (root / "models" / name).is_file(), name
    for plot in ("history", "confusion", "roc", "pr", "scores"):
        assert (root / "plots" / f"smoke_{plot}.png").is_file(), plot
    assert "test EER" in stdout and "images/s" in stdout


@pytest.mark.slow
def test_smoke_run_metadata_and_metrics(trained):
    root, data_dir, _ = trained
    metadata = json.loads((root / "models" / "smoke.json").read_text())
    assert metadata["params"] == json.loads((data_dir / "params.json").read_text())
    assert metadata["threshold_rule"] == "validation EER" and 0.0 < metadata["threshold"] < 1.0
    assert metadata["calibration"] is None or metadata["calibration"]["method"] == "platt"
    assert metadata["data_summary"]["test"]["real"] == {"files": 2, "images": 2}
    assert metadata["training"]["replicas"] == 2 and metadata["training"]["global_batch_size"] == 8
    assert metadata["training"]["epochs_run"] == 2 and metadata["training"]["images_per_second"] > 0
    record = json.loads((root / "models" / "smoke_metrics.json").read_text())
    assert record["threshold"] == metadata["threshold"]
    assert record["test"]["n"] == 4 and record["validation"]["n"] == 4
    assert record["test"]["at_threshold"]["threshold"] == record["threshold"]
    assert "test_raw_at_0.5" in record and "test_eer_threshold_shift" in record
    assert any("only 2 real files" in warning for warning in record["warnings"])
    history = pd.read_csv(root / "models" / "smoke_history.csv")
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc"} <= set(history.columns)


@pytest.mark.slow
def test_reloaded_model_reproduces_the_saved_test_scores(trained):
    from deepfake_detector.features import load_png
    from deepfake_detector.inference import aggregate
    from deepfake_detector.model_store import load_detector

    root, data_dir, _ = trained
    detector = load_detector(root / "models" / "smoke.keras")
    saved = pd.read_csv(root / "models" / "smoke_test_scores.csv")
    windows = load_split_table(data_dir).query("split == 'test'")
    rescored = []
    for source_path, rows in windows.groupby("source_path", sort=False):
        pictures = np.stack([load_png(data_dir / path) for path in rows["png_path"]])
        raw = aggregate(detector.model.predict(pictures, verbose=0).ravel(), "mean")
        rescored.append({"source_path": source_path, "p_fake_raw": raw, "windows": len(rows),
                         "p_fake": float(detector.calibrate(np.array([raw]))[0])})
    rescored = pd.DataFrame(rescored).set_index("source_path").loc[saved["source_path"]]
    np.testing.assert_array_equal(rescored["windows"], saved["windows"])
    np.testing.assert_allclose(rescored["p_fake_raw"], saved["p_fake_raw"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rescored["p_fake"], saved["p_fake"], rtol=1e-5, atol=1e-6)
