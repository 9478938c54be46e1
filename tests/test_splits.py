"""Stage 2: grouped, stratified, seeded splits of source files, the leak check and the split folders."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import PROJECT_ROOT
from deepfake_detector.data.splits import (SPLITS_COLUMNS, Info, SplitError, check_no_leak, make_splits,
                                          split_folder)

SCRIPT = PROJECT_ROOT / "scripts" / "split_data.py"


def manifest_rows(class_name: str, count: int, windows: int = 2, official: str = "", prefix: str = "") -> list:
    """Manifest rows for `count` distinct source files of one class with `windows` images each."""
    rows = []
    for index in range(count):
        stem = f"{prefix}{class_name}{index:03d}"
        for window in range(windows):
            rows.append({
                "png_path": f"images/{class_name}/{stem}__w{window:03d}.png", "class": class_name,
                "source_path": f"/data/{class_name}/{stem}.wav", "source_sha256": f"sha-{stem}",
                "window_index": window, "official_split": official,
            })
    return rows


def manifest(n_real: int = 30, n_fake: int = 40, **options) -> pd.DataFrame:
    return pd.DataFrame(manifest_rows("real", n_real, **options) + manifest_rows("fake", n_fake, **options))


def split_of(table: pd.DataFrame) -> dict:
    return table.drop_duplicates("source_path").set_index("source_path")["split"].to_dict()


def test_same_seed_same_splits_other_seed_different():
    first, _ = make_splits(manifest(), seed=7)
    again, _ = make_splits(manifest().sample(frac=1.0, random_state=3), seed=7)  # row order must not matter
    other, _ = make_splits(manifest(), seed=8)
    assert first.equals(again)
    assert not first.equals(other)
    assert list(first.columns) == SPLITS_COLUMNS


def test_stratified_with_ratios_and_every_class_in_every_split():
    table, warnings = make_splits(manifest(n_real=30, n_fake=40), ratios=(0.8, 0.1, 0.1))
    files = table.drop_duplicates("source_path")
    counts = files.groupby(["split", "class"]).size()
    assert warnings == []
    assert counts["train", "real"] == 24 and counts["val", "real"] == 3 and counts["test", "real"] == 3
    assert counts["train", "fake"] == 32 and counts["val", "fake"] == 4 and counts["test", "fake"] == 4
    # Every image of a file follows its file.
    assert (table.groupby("source_path")["split"].nunique() == 1).all()


def test_tiny_class_still_reaches_every_split():
    table, warnings = make_splits(manifest(n_real=3, n_fake=50))
    assert warnings == []
    assert set(table[table["class"] == "real"]["split"]) == {"train", "val", "test"}


def test_too_few_groups_warn():
    _, warnings = make_splits(manifest(n_real=2, n_fake=20))
    assert any("no real" in warning for warning in warnings)


def test_identical_audio_under_both_labels_is_a_warning():
    rows = manifest(n_real=20, n_fake=20, windows=1)
    rows.loc[rows["source_path"] == "/data/fake/fake003.wav", "source_sha256"] = "sha-real002"
    table, warnings = make_splits(rows, seed=5)
    mislabelled = [warning for warning in warnings if "labelled both real and fake" in warning]
    assert len(mislabelled) == 1 and not isinstance(mislabelled[0], Info)
    assert "1 identical file(s)" in mislabelled[0]
    splits = split_of(table)
    assert splits["/data/fake/fake003.wav"] == splits["/data/real/real002.wav"]


def test_duplicate_content_and_user_groups_stay_together():
    rows = manifest(n_real=20, n_fake=20, windows=1)
    # Same content under two names in different folders.
    rows.loc[rows["source_path"] == "/data/real/real001.wav", "source_sha256"] = "sha-real000"
    speakers = pd.DataFrame({
        "path": ["real/real005.wav", "real/real006.wav", "/data/fake/fake007.wav", "fake/missing.wav"],
        "group": ["spk1", "spk1", "spk1", "spk2"],
    })
    table, warnings = make_splits(rows, seed=5, groups_table=speakers)
    splits = split_of(table)
    assert splits["/data/real/real000.wav"] == splits["/data/real/real001.wav"]
    assert splits["/data/real/real005.wav"] == splits["/data/real/real006.wav"] == splits["/data/fake/fake007.wav"]
    assert table.set_index("source_path").loc["/data/fake/fake007.wav", "group"] == "spk1"
    # spk1 holds real and fake files on purpose (the groups file says so): information, not a warning.
    assert [type(warning) for warning in warnings if "both classes" in warning] == [Info]
    assert not any("labelled both real and fake" in warning for warning in warnings)
    assert any("match no rendered source" in warning for warning in warnings)
    check_no_leak(table)


def test_many_seeds_never_leak():
    rows = manifest(n_real=25, n_fake=25, windows=1)
    rows["source_sha256"] = [f"sha-{index // 3}" for index in range(len(rows))]  # chains of duplicates
    for seed in range(10):
        table, _ = make_splits(rows, seed=seed)
        for column in ("source_path", "source_sha256", "group"):
            assert (table.groupby(column)["split"].nunique() == 1).all()


def test_leak_check_refuses_crossing():
    table = pd.DataFrame({
        "png_path": ["a.png", "b.png"], "class": ["real", "real"], "split": ["train", "test"],
        "source_path": ["/a.wav", "/b.wav"], "source_sha256": ["same", "same"], "group": ["g1", "g2"],
    })
    with pytest.raises(SplitError, match="content hash"):
        check_no_leak(table)


def test_official_split_is_honoured():
    rows = pd.DataFrame(
        manifest_rows("real", 4, official="train", prefix="t") + manifest_rows("fake", 4, official="train", prefix="t")
        + manifest_rows("real", 2, official="val", prefix="v") + manifest_rows("fake", 3, official="test", prefix="s")
    )
    for seed in (1, 2):
        table, _ = make_splits(rows, seed=seed)
        assert (table["split"] == rows.set_index("png_path").loc[table["png_path"], "official_split"].values).all()


def write_spectrogram_folder(root: Path, n_per_class: int = 10) -> None:
    rows = manifest(n_real=n_per_class, n_fake=n_per_class)
    for png_path in rows["png_path"]:
        (root / png_path).parent.mkdir(parents=True, exist_ok=True)
        (root / png_path).write_bytes(png_path.encode())  # stand-in for image bytes
    rows.to_csv(root / "manifest.csv", index=False)


def test_split_folder_materialises_links_and_removes_stale(tmp_path):
    write_spectrogram_folder(tmp_path)
    stale = tmp_path / "train" / "real" / "old__w000.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier run")

    table, _ = split_folder(tmp_path, seed=1)
    assert pd.read_csv(tmp_path / "splits.csv").equals(table)
    assert not stale.exists()
    for png_path, split, class_name in zip(table["png_path"], table["split"], table["class"]):
        placed = tmp_path / split / class_name / Path(png_path).name
        assert placed.samefile(tmp_path / png_path)  # a hard link, not a copy
    linked = {path.name for path in tmp_path.glob("*/*/*.png") if path.parts[-3] != "images"}
    assert linked == {Path(path).name for path in table["png_path"]}

    # A rerun with another seed moves files: nothing may remain in its old split folder.
    table, _ = split_folder(tmp_path, seed=2, copy=True)
    for split, class_name in {(s, c) for s, c in zip(table["split"], table["class"])}:
        present = {path.name for path in (tmp_path / split / class_name).iterdir()}
        wanted = table[(table["split"] == split) & (table["class"] == class_name)]["png_path"]
        assert present == {Path(path).name for path in wanted}


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, check=False)


def test_cli_help_missing_input_and_table(tmp_path):
    assert run_cli("--help").returncode == 0
    missing = run_cli("--input", tmp_path / "nowhere")
    assert missing.returncode != 0 and missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("error:")
    bad_ratios = run_cli("--input", tmp_path, "--ratios", "0.5", "0.5", "0.5")
    assert bad_ratios.returncode != 0 and bad_ratios.stderr.strip().count("\n") == 0

    write_spectrogram_folder(tmp_path)
    result = run_cli("--input", tmp_path, "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "total" in result.stdout and "20" in result.stdout


def test_zero_ratio_split_stays_empty():
    rows = manifest(n_real=7, n_fake=9, windows=1)
    rows.loc[rows.index[:4], "source_sha256"] = "one big duplicate group"
    table, warnings = make_splits(rows, ratios=(0.9, 0.1, 0.0))
    assert "test" not in set(table["split"]) and warnings == []


# ---------------------------------------------------------------------------------------------- pair sets

def write_corpus_tables(folder: Path, n_pairs: int = 8, n_real: int = 10, n_fake: int = 10) -> None:
    """groups.csv and a demo_manifest.csv: fake k < n_pairs is a copy-synthesis of real k, in real k's group."""
    manifest_rows_, groups = [], []
    for index in range(n_real):
        manifest_rows_.append({"file": f"real/real{index:03d}.wav", "label": "real", "source_file": ""})
        groups.append({"path": f"real/real{index:03d}.wav", "group": f"speaker{index}"})
    for index in range(n_fake):
        source = f"real/real{index:03d}.wav" if index < n_pairs else ""
        manifest_rows_.append({"file": f"fake/fake{index:03d}.wav", "label": "fake", "source_file": source})
        groups.append({"path": f"fake/fake{index:03d}.wav",
                       "group": f"speaker{index}" if index < n_pairs else f"voice{index}"})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(manifest_rows_).to_csv(folder / "demo_manifest.csv", index=False)
    pd.DataFrame(groups).to_csv(folder / "groups.csv", index=False)


def test_pair_ids_follow_the_source_file_and_pair_sets_share_a_split(tmp_path):
    from deepfake_detector.data.splits import read_groups_csv, read_pairs_manifest

    write_corpus_tables(tmp_path)
    rows = manifest(n_real=10, n_fake=10)
    table, warnings = make_splits(rows, seed=5, groups_table=read_groups_csv(tmp_path / "groups.csv"),
                                  pairs_table=read_pairs_manifest(tmp_path / "demo_manifest.csv"))
    assert not any("pair" in warning for warning in warnings)
    assert list(table.columns) == [*SPLITS_COLUMNS, "pair"]
    pair = table.drop_duplicates("source_path").set_index("source_path")["pair"]
    assert pair["/data/fake/fake003.wav"] == pair["/data/real/real003.wav"] == "real/real003.wav"
    assert pair["/data/real/real009.wav"] == "real/real009.wav"  # a real clip is its own pair id
    assert pair["/data/fake/fake009.wav"] == ""  # a fake that copies no real clip has none
    assert (table[table["pair"] != ""].groupby("pair")["split"].nunique() == 1).all()


def test_leak_check_refuses_a_pair_set_across_splits():
    table = pd.DataFrame({
        "png_path": ["a.png", "b.png", "c.png"], "class": ["real", "fake", "fake"],
        "split": ["train", "test", "test"], "source_path": ["/a.wav", "/b.wav", "/c.wav"],
        "source_sha256": ["1", "2", "3"], "group": ["g1", "g2", "g3"], "pair": ["a", "a", ""],
    })
    with pytest.raises(SplitError, match="pair set"):
        check_no_leak(table)
    check_no_leak(table.assign(pair=["a", "", ""]))  # unpaired rows never count as one set


def test_cli_reads_pairs_from_the_manifest_beside_groups(tmp_path):
    write_spectrogram_folder(tmp_path / "specs")
    write_corpus_tables(tmp_path / "corpus")
    result = run_cli("--input", tmp_path / "specs", "--groups", tmp_path / "corpus" / "groups.csv")
    assert result.returncode == 0, result.stderr
    assert "10 pair sets over 18 files" in result.stdout  # each real is a pair id; 8 fakes join one
    table = pd.read_csv(tmp_path / "specs" / "splits.csv", keep_default_na=False)
    assert (table.groupby("source_path")["pair"].first() != "").sum() == 18
    without = run_cli("--input", tmp_path / "specs", "--groups", tmp_path / "corpus" / "groups.csv",
                      "--pairs", "none")
    assert without.returncode == 0 and "pair" not in pd.read_csv(tmp_path / "specs" / "splits.csv").columns
