"""Generalisation benchmark: LOSO split tables, evaluation sets, and a --quick run with every row and column."""
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
    families = ("espeak-ng", "piper", benchmark.COPY_SYNTHESIS, "flite")
    for split in ("train", "val", "test"):
        for index in range(4):
            for class_name, family in (("real", ""), ("fake", families[index])):
                source = f"/corpus/{class_name}/{split}{index}.flac"
                rows.append({"png_path": f"images/{split}{index}{class_name}.png", "class": class_name,
                             "split": split, "source_path": source, "source_sha256": source, "group": source,
                             "family": family})
    return pd.DataFrame(rows)


def test_copy_synthesis_vocoders_form_one_family():
    assert benchmark.family_of("world-copysynth") == benchmark.family_of("lpc-copysynth") == "copy-synthesis"
    assert benchmark.family_of("piper") == "piper"
    assert benchmark.held_out_families(corpus_table(), None) == ["espeak-ng", "flite", "piper", "copy-synthesis"]
    assert benchmark.held_out_families(corpus_table(), 1) == ["espeak-ng"]


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
def test_quick_run_writes_every_row_and_column(tmp_path):
    command = [sys.executable, str(SCRIPT), "--quick", "--work", str(tmp_path / "work"), "--out",
               str(tmp_path / "out"), "--shared-data", str(SHARED_DATA)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "out" / "generalisation.md").read_text()
    results = json.loads((tmp_path / "out" / "generalisation.json").read_text())
    assert (tmp_path / "out" / "generalisation.png").stat().st_size > 10_000
    table_lines = [line for line in report.splitlines() if line.startswith("| ")]
    header = table_lines[0]
    for column in (*benchmark.EER_COLUMNS, "params", "train s"):
        assert column in header, column
    rows = benchmark.benchmark_rows(benchmark.BenchmarkSettings().models)
    assert [row.name for row in rows] == ["baseline", "baseline+aug", "compact_cmn", "compact_cmn+aug"]
    for row in rows:
        cells = next(line for line in table_lines if line.startswith(f"| {row.name} |")).split("|")[1:-1]
        assert len(cells) == len(header.split("|")) - 2
        assert all(cell.strip() for cell in cells)
    assert [row["row"] for row in results["rows"]] == [row.name for row in rows]
    for row in results["rows"]:
        assert 0.0 <= row["in_domain"]["eer"] <= 1.0 and list(row["loso"]) == ["espeak-ng"]
        assert row["parameters"] > 0 and row["train_seconds"] > 0
        for name in ("for-norm-mini", "tts-mixed", "crossdomain", "noise10db", "mp3_64k", "telephone"):
            evaluation = row["evaluations"][name]
            assert "eer" in evaluation or evaluation["skipped"], name  # a number, or n/a with its reason
    assert results["settings"]["quick"] and results["settings"]["epochs"] == 1
    assert "QUICK smoke mode" in report
