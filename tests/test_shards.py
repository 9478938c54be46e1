"""Sharded rendering: N shards cover a folder exactly once, merge to the single run's manifest row by row, and a
merge refuses shards made with other parameters or an incomplete set."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, write_tone
from deepfake_detector.data import features
from deepfake_detector.data.spectrograms import SpectrogramError, generate, merge_shards, parse_shard
from deepfake_detector.params import Params

SCRIPT = PROJECT_ROOT / "scripts" / "generate_spectrograms.py"
PARAMS = Params()


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    for index in range(9):
        class_name = ("real", "fake")[index % 2]
        write_tone(root / class_name / f"clip{index}.wav", seconds=1.0 + 0.8 * index, frequency=150.0 + 60 * index,
                   noise=0.05 * (index % 2), seed=index)
    (root / "real" / "broken.wav").write_bytes(b"not audio at all")
    return root


def read_manifest(folder):
    return pd.read_csv(folder / "manifest.csv", keep_default_na=False)


def test_three_shards_merge_to_the_single_run(audio_folder, tmp_path):
    single = tmp_path / "single"
    generate(audio_folder, single, PARAMS, progress=False)
    shards = [tmp_path / f"shard{index}" for index in range(3)]
    shard_files = []
    for index, shard_dir in enumerate(shards):
        generate(audio_folder, shard_dir, PARAMS, progress=False, shard=(index, 3))
        shard_files.append(set(read_manifest(shard_dir)["source_path"]))
    # Disjoint shards (no file rendered twice) that between them cover every file.
    assert sum(len(files) for files in shard_files) == len(set.union(*shard_files)) == 9
    assert sum(bool(files) for files in shard_files) >= 2  # the hash really spreads the files

    result = subprocess.run([sys.executable, str(SCRIPT), "--merge", *map(str, shards), "--output",
                             str(tmp_path / "merged")], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    merged, expected = read_manifest(tmp_path / "merged"), read_manifest(single)
    assert list(merged.columns) == list(expected.columns) and len(merged) == len(expected)
    for merged_row, expected_row in zip(merged.to_dict("records"), expected.to_dict("records")):
        assert merged_row == expected_row
    for png_path in expected["png_path"]:
        np.testing.assert_array_equal(features.load_png(tmp_path / "merged" / png_path),
                                      features.load_png(single / png_path))
    assert (pd.read_csv(tmp_path / "merged" / "errors.csv").to_dict("records")
            == pd.read_csv(single / "errors.csv").to_dict("records"))
    assert Params.load(tmp_path / "merged" / "params.json") == PARAMS


def test_a_shard_hashes_each_file_once(audio_folder, tmp_path, monkeypatch):
    # select_shard hashes every file to choose it; the render must reuse that hash, not read the file again.
    from deepfake_detector.data import spectrograms

    hashed = []
    real_hash = spectrograms.sha256_file
    monkeypatch.setattr(spectrograms, "sha256_file", lambda path: hashed.append(path) or real_hash(path))
    generate(audio_folder, tmp_path / "shard", PARAMS, progress=False, shard=(0, 2))  # jobs=1: in this process
    assert len(hashed) == len(set(hashed)) == 10  # 9 clips and the broken file, each hashed once to pick a shard


def test_merge_refuses_other_parameters_and_incomplete_sets(audio_folder, tmp_path):
    generate(audio_folder, tmp_path / "a0", PARAMS, progress=False, shard=(0, 2))
    generate(audio_folder, tmp_path / "a1", PARAMS.replace(hop_s=2.0), progress=False, shard=(1, 2))
    with pytest.raises(SpectrogramError, match="other parameters.*hop_s"):
        merge_shards([tmp_path / "a0", tmp_path / "a1"], tmp_path / "out")
    with pytest.raises(SpectrogramError, match=r"missing \[1\]"):
        merge_shards([tmp_path / "a0"], tmp_path / "out")
    generate(audio_folder, tmp_path / "whole", PARAMS, progress=False)  # a whole run is not a shard
    with pytest.raises(SpectrogramError, match="shard.json is missing"):
        merge_shards([tmp_path / "a0", tmp_path / "whole"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_shard_argument_is_checked():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/2", "1", "a/b"):
        with pytest.raises(SpectrogramError, match="--shard"):
            parse_shard(bad)
