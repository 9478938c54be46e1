"""Evaluation: labelled folders and manifests, the report folder, hand-checked metrics and per-group breakdown."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, write_tone
from deepfake_detector.cli import evaluate
from deepfake_detector.report import evaluation
from tiny_detector import save_tiny_detector


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_tiny_detector(tmp_path_factory.mktemp("model"))


def make_labelled_folder(root, real="bonafide", fake="spoof"):
    for index in range(3):
        write_tone(root / real / f"speaker{index}" / f"tone{index}.wav", 0.8 + 0.4 * index,
                   frequency=200.0 + 100 * index)
        write_tone(root / fake / f"noise{index}.flac", 1.2, amplitude=0.05, noise=0.2, seed=index)
    return root


def stub_scores():
    # Hand-worked: real 0.1 0.3 0.6, fake 0.2 0.7 0.9 0.8; one unreadable file that must not count.
    return pd.DataFrame({
        "file": ["r1", "r2", "r3", "f1", "f2", "f3", "f4", "bad"],
        "label": ["real", "real", "real", "fake", "fake", "fake", "fake", "fake"],
        "p_fake": [0.1, 0.3, 0.6, 0.2, 0.7, 0.9, 0.8, np.nan],
        "error": ["", "", "", "", "", "", "", "silent: peak level below 0.0001"],
        "speaker_or_system": ["A", "B", "B", "B", "B", "A", "C", "C"],
    })


def test_metrics_and_breakdown_match_hand_computed_values(tmp_path):
    summary = evaluation.write_evaluation(stub_scores(), 0.5, tmp_path, "stub")
    # At 0.5: real 0.6 is a false alarm, fake 0.2 a miss -> 5 of 7 right.
    assert summary["at_threshold"]["accuracy"] == pytest.approx(5 / 7)
    assert summary["at_threshold"]["confusion_matrix"] == [[2, 1], [1, 3]]
    # Closest miss/false-alarm rates at threshold 0.6: 1/4 fakes missed, 1/3 reals flagged -> EER 7/24.
    assert summary["eer"] == pytest.approx(7 / 24) and summary["eer_threshold"] == pytest.approx(0.6)
    # Fake-above-real pairs: 0.2 beats 0.1; 0.7, 0.8 and 0.9 beat all three reals -> 10 of 12.
    assert summary["roc_auc"] == pytest.approx(10 / 12)
    assert summary["n"] == 7 and summary["n_failed"] == 1
    assert summary["failed_files"] == [{"file": "bad", "error": "silent: peak level below 0.0001"}]
    assert json.loads((tmp_path / "metrics.json").read_text())["eer"] == pytest.approx(7 / 24)
    assert pd.read_csv(tmp_path / "scores.csv")["file"].tolist() == stub_scores()["file"].tolist()


def test_group_breakdown_gives_eer_only_where_both_classes_exist():
    scored = stub_scores().iloc[:7]
    breakdown = evaluation.group_breakdown(scored, 0.5).set_index("value")
    assert breakdown.loc["A", ["n", "accuracy", "eer", "roc_auc"]].tolist() == [2, 1.0, 0.0, 1.0]
    # B: real 0.3 0.6, fake 0.2 0.7 -> half right at 0.5; EER 1/2 at 0.6; AUC: 0.7 beats both reals -> 2/4.
    assert breakdown.loc["B", ["n", "accuracy", "eer", "roc_auc"]].tolist() == [4, 0.5, 0.5, 0.5]
    assert breakdown.loc["C", "accuracy"] == 1.0 and np.isnan(breakdown.loc["C", "eer"])


def test_evaluate_a_labelled_folder_writes_the_report(model_path, tmp_path, capsys):
    data = make_labelled_folder(tmp_path / "data")
    (data / "spoof" / "broken.wav").write_text("not audio")
    out = tmp_path / "report"
    assert evaluate.main([str(data), "--model", str(model_path), "--out", str(out)]) == 0
    assert {"metrics.json", "report.md", "scores.csv", "breakdown.csv", "roc.png"} <= {p.name for p in out.iterdir()}
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert scores.columns.tolist()[:4] == ["file", "label", "p_fake", "error"]
    assert sorted(scores["label"]) == ["fake"] * 4 + ["real"] * 3
    assert "bonafide/speaker0/tone0.wav" in set(scores["file"])
    assert scores.set_index("file").loc["spoof/broken.wav", "error"] != ""
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["n_failed"] == 1 and metrics["model"] == "tiny"
    assert "spoof/broken.wav" in (out / "report.md").read_text()
    assert "6 files scored, 1 failed" in capsys.readouterr().out


def test_evaluate_a_manifest_split_with_group_columns(model_path, tmp_path):
    data = make_labelled_folder(tmp_path / "corpus", real="real", fake="fake")
    files = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.suffix in (".wav", ".flac"))
    pd.DataFrame({"path": files, "label": [f.split("/")[0] for f in files],
                  "split": ["testing", "training"] * 3, "speaker_or_system": ["x", "y", "x", "y", "x", "y"],
                  }).to_csv(data / "manifest.csv", index=False)
    out = tmp_path / "report"
    assert evaluate.main([str(data / "manifest.csv"), "--model", str(model_path), "--split", "test",
                          "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 3 and set(scores["split"]) == {"test"}  # split names are canonical
    assert set(pd.read_csv(out / "breakdown.csv")["value"]) == {"x"}


def test_default_report_folder_is_named_after_model_data_and_split():
    assert evaluate.data_name(PROJECT_ROOT / "x" / "for-norm-mini" / "manifest.csv") == "for-norm-mini"
    assert evaluate.data_name(PROJECT_ROOT / "x" / "crossdomain") == "crossdomain"


def test_unknown_class_folder_gives_status_two(model_path, tmp_path, capsys):
    write_tone(tmp_path / "data" / "maybe" / "a.wav", 1.0)
    assert evaluate.main([str(tmp_path / "data"), "--model", str(model_path), "--out", str(tmp_path / "r")]) == 2
    assert "cannot tell whether class folder 'maybe'" in capsys.readouterr().err


def test_nothing_scorable_gives_status_one(model_path, tmp_path, capsys):
    (tmp_path / "data" / "real").mkdir(parents=True)
    (tmp_path / "data" / "real" / "a.wav").write_bytes(b"")
    assert evaluate.main([str(tmp_path / "data"), "--model", str(model_path), "--out", str(tmp_path / "r")]) == 1
    assert "none of the 1 files could be scored" in capsys.readouterr().err


def test_per_attack_eer_pits_each_attack_against_all_bona_fide():
    # Reals 0.1 0.2 0.3 0.4. A01 fakes 0.9 0.8: separable -> EER 0, AUC 1. A02 fakes 0.15 0.35: at threshold 0.3
    # half the fakes are missed and half the reals flagged -> EER 0.5; fake-above-real pairs 1 + 3 of 8 -> AUC 0.5.
    scored = pd.DataFrame({"file": list("abcdefgh"), "label": ["real"] * 4 + ["fake"] * 4,
                           "p_fake": [0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.15, 0.35], "error": [""] * 8,
                           "attack": ["-"] * 4 + ["A01", "A01", "A02", "A02"]})
    attacks = evaluation.attack_breakdown(scored, threshold=0.5).set_index("attack")
    assert attacks.loc["A01", ["n_fake", "n_real", "eer", "roc_auc", "missed_at_threshold"]].tolist() == [
        2, 4, 0.0, 1.0, 0.0]
    assert attacks.loc["A02", ["n_fake", "n_real", "eer", "roc_auc", "missed_at_threshold"]].tolist() == [
        2, 4, 0.5, 0.5, 1.0]
    assert evaluation.attack_breakdown(scored.drop(columns="attack"), 0.5).empty


def test_evaluate_an_asvspoof_2019_root_per_attack_with_min_tdcf(model_path, tmp_path, capsys):
    import dataset_fixtures

    root = dataset_fixtures.asvspoof2019(tmp_path / "corpus")
    dataset_fixtures.asvspoof2019_asv_scores(root)
    out = tmp_path / "report"
    assert evaluate.main([str(root), "--model", str(model_path), "--split", "eval", "--out", str(out)]) == 0
    metrics_json = json.loads((out / "metrics.json").read_text())
    assert metrics_json["layout"] == "asvspoof2019_la" and metrics_json["n"] == 2
    assert [row["attack"] for row in metrics_json["per_attack"]] == ["A07"]  # A08's only line has no audio
    assert metrics_json["min_tdcf"] is not None and metrics_json["min_tdcf"] >= 0
    assert metrics_json["dataset_problems"] == 2
    report = (out / "report.md").read_text()
    assert "## EER per attack" in report and "| A07 | 1 | 1 |" in report and "min t-DCF" in report
    errors = pd.read_csv(out / "errors.csv")
    assert errors["reason"].str.contains("eval.trl.txt line 3").any()
    assert "min t-DCF" in capsys.readouterr().out


def test_evaluate_an_asvspoof_2021_root_gives_the_revised_min_tdcf_on_la_eval_only(model_path, tmp_path):
    import dataset_fixtures

    from deepfake_detector import datasets
    from deepfake_detector.report import metrics

    root = dataset_fixtures.asvspoof2021(tmp_path / "corpus")
    dataset_fixtures.asvspoof2021_asv_scores(root)
    asv = datasets.asv_scores(root, "asvspoof2021", "test")
    assert asv.cost_model == "asvspoof2021" and len(asv.keys) == 6  # the progress-subset ASV trial is left out
    out = tmp_path / "report"
    assert evaluate.main([str(root), "--model", str(model_path), "--out", str(out)]) == 0
    metrics_json = json.loads((out / "metrics.json").read_text())
    assert metrics_json["n"] == 6 and "revised" in metrics_json["min_tdcf_cost_model"]
    # Only LA's eval rows count (one fake, one real), as in the official ranking: recompute from their scores.
    scores = pd.read_csv(out / "scores.csv")
    la_eval = scores[scores["file"].str.contains("LA_E_9332881|LA_E_9332883")]
    expected = metrics.min_tdcf_revised((la_eval["label"] == "fake").astype(int), la_eval["p_fake"],
                                        asv.keys, asv.scores)
    assert metrics_json["min_tdcf"] == pytest.approx(expected)
    assert "revised t-DCF, organisers' ASV scores, 2 trials, track LA, subset eval" in (out / "report.md").read_text()


def test_asvspoof_2021_asv_scores_must_name_the_trials_of_the_asv_keys(tmp_path):
    import dataset_fixtures

    from deepfake_detector import datasets

    root = dataset_fixtures.asvspoof2021(tmp_path / "corpus")
    dataset_fixtures.asvspoof2021_asv_scores(root, scores_trial="LA_E_7777777")
    with pytest.raises(datasets.DatasetError, match="score.txt line 1: trial LA_E_7777777, but .* names LA_E_1000001"):
        datasets.asv_scores(root, "asvspoof2021", "test")
    assert datasets.asv_scores(tmp_path / "corpus", "asvspoof2021", "val") is None


def test_metadata_columns_become_conditions_but_measurements_and_ids_do_not():
    scored = pd.DataFrame({"file": list("abcdefgh"), "label": ["real", "fake"] * 4,
                           "p_fake": [0.1, 0.9, 0.2, 0.3, 0.4, 0.8, 0.6, 0.7], "error": [""] * 8,
                           "codec": ["none"] * 4 + ["mp3"] * 4, "duration_s": ["1.5", "2.25"] * 4,
                           "sha256": list("12345678"), "attack": ["-", "A01"] * 4})
    assert evaluation.condition_columns(scored) == ["codec"]
    breakdown = evaluation.group_breakdown(scored, 0.5, ["codec"]).set_index("value")
    # none: real 0.1 0.2, fake 0.9 0.3 -> separable at 0.3 -> EER 0; mp3: real 0.4 0.6, fake 0.8 0.7 -> EER 0.
    # Pooled over both the fakes 0.3 sits below reals 0.4 and 0.6, so per-condition tables show what pooling hides.
    assert breakdown.loc["none", "eer"] == 0.0 and breakdown.loc["mp3", "eer"] == 0.0
