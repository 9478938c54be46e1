"""Evaluation plots and report: files appear, numbers equal metrics.summarise, warnings say what is wrong."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfake_detector.report import metrics, reports

LABELS = [0, 0, 0, 0, 1, 1, 1, 1]
SCORES = [0.05, 0.2, 0.4, 0.7, 0.3, 0.6, 0.8, 0.95]
THRESHOLD = 0.5


def _is_png(path):
    with Image.open(path) as picture:
        return picture.format == "PNG" and min(picture.size) > 100


def test_report_numbers_match_metrics_summarise(tmp_path):
    returned = reports.write_evaluation_report(LABELS, SCORES, THRESHOLD, tmp_path, "Tiny set",
                                               extra={"model": "m1", "n": -1})
    written = json.loads((tmp_path / "metrics.json").read_text())
    expected = metrics.summarise(LABELS, SCORES, THRESHOLD)
    for key, value in expected.items():
        assert written[key] == pytest.approx(value) if isinstance(value, float) else written[key] == value
    assert written["model"] == "m1" and written["n"] == 8  # extra cannot overwrite a measured number
    assert returned == written
    assert written["at_threshold"]["confusion_matrix"] == [[3, 1], [1, 3]]
    assert written["eer"] == pytest.approx(0.25)


def test_report_writes_plots_and_readable_markdown(tmp_path):
    reports.write_evaluation_report(LABELS, SCORES, THRESHOLD, tmp_path, "Tiny set")
    for name in ("confusion.png", "roc.png", "pr.png", "scores.png"):
        assert _is_png(tmp_path / name), name
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# Tiny set")
    assert "8 files: 4 real, 4 fake" in text
    assert "EER 0.250" in text and "ROC AUC 0.812" in text
    assert "only 4 real files" in text  # tiny sample warning
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_single_class_predictions_and_inverted_ranking_are_warned(tmp_path):
    summary = reports.write_evaluation_report(LABELS, [0.9 - s / 2 for s in SCORES], 0.0, tmp_path, "Bad model")
    assert any("single class" in warning and "called fake" in warning for warning in summary["warnings"])
    assert any("wrong way" in warning for warning in summary["warnings"])


def test_one_class_data_still_gets_a_report(tmp_path):
    summary = reports.write_evaluation_report([1, 1, 1], [0.2, 0.7, 0.9], 0.5, tmp_path, "Fakes only")
    assert "eer" not in summary
    assert any("no real files" in warning for warning in summary["warnings"])
    assert (tmp_path / "confusion.png").is_file() and not (tmp_path / "roc.png").exists()


def test_history_plot_from_csv_logger_columns(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "accuracy": [0.5, 0.7, 0.9], "auc": [0.5, 0.8, 0.9],
                            "loss": [0.7, 0.5, 0.3], "val_accuracy": [0.5, 0.6, 0.6],
                            "val_auc": [0.5, 0.7, 0.8], "val_loss": [0.69, 0.6, 0.65]})
    history.to_csv(tmp_path / "history.csv", index=False)
    assert _is_png(reports.plot_history(tmp_path / "history.csv", tmp_path / "history.png"))
    assert _is_png(reports.plot_history(tmp_path / "history.csv", tmp_path / "loss.png", "val_loss", kept_epoch=2))


def test_best_epoch_follows_the_monitored_metric_and_keeps_the_first_tie():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_auc": [0.6, 0.8, 0.9, 0.9], "val_loss": [0.7, 0.5, 0.6, 0.8]})
    assert reports.best_epoch(history, "val_auc") == 3  # the epoch EarlyStopping restores, not the lowest loss
    assert reports.best_epoch(history, "val_loss") == 2


def test_evaluation_plots_take_a_prefix(tmp_path):
    paths = reports.write_evaluation_plots(np.array(LABELS), np.array(SCORES), THRESHOLD, tmp_path, prefix="m_")
    assert sorted(path.name for path in paths.values()) == ["m_confusion.png", "m_pr.png", "m_roc.png",
                                                            "m_scores.png"]
    assert all(path.is_file() for path in paths.values())
