"""datasets/: every layout read from a tiny fixture in its real format, detection, problems and malformed lines."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import dataset_fixtures as fixtures
from conftest import PROJECT_ROOT, write_tone
from deepfake_detector import datasets
from deepfake_detector.datasets import DatasetError


def by_name(table: pd.DataFrame) -> dict:
    """File name -> (label, split, group, attack) of every row."""
    return {Path(row.path).name: (row.label, row.split, row.group, row.attack) for row in table.itertuples()}


def test_asvspoof2019_keeps_official_splits_speakers_attacks_and_lists_problems(tmp_path):
    root = fixtures.asvspoof2019(tmp_path / "corpus")
    for given in (root, root / "LA"):  # the folder holding LA/ or LA/ itself
        assert datasets.detect(given) == "asvspoof2019_la"
    table, problems = datasets.read(root)
    assert by_name(table) == {
        "LA_T_1000001.flac": ("real", "train", "LA_0079", "-"),
        "LA_T_1000002.flac": ("fake", "train", "LA_0079", "A01"),
        "LA_D_1000001.flac": ("real", "val", "LA_0070", "-"), "LA_D_1000002.flac": ("fake", "val", "LA_0070", "A02"),
        "LA_E_1000001.flac": ("real", "test", "LA_0039", "-"),
        "LA_E_1000002.flac": ("fake", "test", "LA_0040", "A07"),
    }
    assert all(Path(path).is_absolute() and Path(path).is_file() for path in table["path"])
    (missing_file, missing_reason), (orphan_file, orphan_reason) = problems
    assert missing_file.endswith("LA_E_1000003.flac")
    assert missing_reason.startswith("audio missing")
    assert missing_reason.endswith("ASVspoof2019.LA.cm.eval.trl.txt line 3")
    assert orphan_file.endswith("LA_E_9999999.flac") and "named by no line" in orphan_reason
    with pytest.raises(DatasetError, match="2 problem"):
        datasets.read(root, strict=True)


def test_malformed_line_and_unknown_label_name_the_file_and_line(tmp_path):
    root = fixtures.asvspoof2019(tmp_path / "corpus")
    protocol = root / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt"
    good = protocol.read_text()
    protocol.write_text(good + "\nLA_0079 LA_T_1000003 -\n")  # blank line, then a short line
    with pytest.raises(DatasetError, match=r"train\.trn\.txt line 4: 3 field\(s\), expected at least 5"):
        datasets.read(root)
    protocol.write_text(good + "LA_0079 LA_T_1000003 - A01 maybe\n")
    with pytest.raises(DatasetError, match=r"train\.trn\.txt line 3: unknown label 'maybe'"):
        datasets.read(root)


def test_asvspoof2021_la_and_df_keys_with_codec_transmission_and_vocoder(tmp_path):
    root = fixtures.asvspoof2021(tmp_path / "corpus")
    table, problems = datasets.read(root)
    assert table.attrs["layout"] == "asvspoof2021" and problems == []
    assert set(table["split"]) == {"test"}
    rows = table.assign(name=table["path"].map(lambda path: Path(path).stem)).set_index("name")
    assert rows.loc["LA_E_9332881", ["label", "attack", "codec", "transmission", "subset"]].tolist() == [
        "fake", "A07", "alaw", "ita_tx", "eval"]
    assert rows.loc["LA_E_9332882", ["label", "attack", "subset"]].tolist() == ["real", "-", "progress"]
    # DF: the 4th column is the source corpus, the 9th the vocoder family; extra trailing columns are ignored.
    assert rows.loc["DF_E_2000013", ["track", "attack", "source", "vocoder", "group"]].tolist() == [
        "DF", "Task1-team20", "vcc2020", "neural_vocoder_nonautoregressive", "TEF2"]
    assert rows.loc["DF_E_2000027", ["label", "attack", "codec"]].tolist() == ["real", "-", "nocodec"]


def test_asvspoof5_whitespace_tsv_and_flac_folders(tmp_path):
    root = fixtures.asvspoof5(tmp_path / "corpus")
    table, problems = datasets.read(root)
    assert table.attrs["layout"] == "asvspoof5" and problems == []
    assert by_name(table) == {
        "T_0000000000.flac": ("fake", "train", "T_4850", "A05"), "T_0000000001.flac": ("real", "train", "T_4850", "-"),
        "D_0000000001.flac": ("fake", "val", "D_0062", "A11"), "D_0000000002.flac": ("real", "val", "D_0062", "-"),
        "E_0000000001.flac": ("fake", "test", "E_0001", "A20"), "E_0000000002.flac": ("real", "test", "E_0002", "-"),
    }
    assert table.set_index(table["path"].map(lambda path: Path(path).stem)).loc[
        "E_0000000001", ["codec", "codec_q", "gender"]].tolist() == ["C05", "3", "F"]


def test_in_the_wild_speakers_are_groups_and_labels_map_through_synonyms(tmp_path):
    root = fixtures.in_the_wild(tmp_path / "corpus")
    for given in (root, root / "release_in_the_wild"):
        table, problems = datasets.read(given)
        assert table.attrs["layout"] == "in_the_wild" and problems == []
        assert by_name(table) == {"0.wav": ("fake", "", "Alec Guinness", ""),
                                  "1.wav": ("real", "", "Alec Guinness", "-"),
                                  "2.wav": ("real", "", "Barack Obama", "-"),
                                  "3.wav": ("fake", "", "Barack Obama", "")}
    (root / "release_in_the_wild" / "4.wav").write_bytes(b"")
    with open(root / "release_in_the_wild" / "meta.csv", "a") as stream:
        stream.write("5.wav,Barack Obama,spoof\n")
    _, problems = datasets.read(root)
    assert [(Path(file).name, reason.split(":")[0]) for file, reason in problems] == [
        ("4.wav", "audio named by no line of " + str(root / "release_in_the_wild" / "meta.csv")),
        ("5.wav", "audio missing")]
    assert problems[1][1].endswith("meta.csv line 6")


def test_wavefake_groups_each_utterance_with_its_vocoded_copies(tmp_path):
    root = fixtures.wavefake(tmp_path / "corpus")
    table, problems = datasets.read(root)
    assert table.attrs["layout"] == "wavefake" and problems == []
    utterance = table[table["group"] == "ljspeech:LJ001-0001"]
    assert sorted(zip(utterance["label"], utterance["attack"], utterance["vocoder"])) == [
        ("fake", "ljspeech_hifiGAN", "hifiGAN"), ("fake", "ljspeech_melgan", "melgan"), ("real", "-", "")]
    japanese = table[table["language"] == "ja"]
    assert sorted(zip(japanese["label"], japanese["group"])) == [("fake", "jsut:BASIC5000_0001"),
                                                                 ("real", "jsut:BASIC5000_0001")]


def test_mlaad_models_are_attacks_and_mailabs_speakers_are_groups(tmp_path):
    root = fixtures.mlaad(tmp_path / "corpus")
    table, problems = datasets.read(root)
    assert table.attrs["layout"] == "mlaad" and problems == []
    rows = table.set_index(table["path"].map(lambda path: Path(path).stem))
    assert rows.loc["mms_1", ["label", "attack", "language", "architecture"]].tolist() == [
        "fake", "facebook_mms-tts-deu", "de", "VITS"]
    assert rows.loc["t_1", ["attack", "language", "architecture"]].tolist() == [
        "tts_models_en_ljspeech_tacotron2-DDC", "en", ""]
    assert rows.loc["g_0001", ["label", "group", "language", "attack"]].tolist() == ["real", "speaker:eva_k", "de", "-"]


def test_fake_or_real_class_folders_and_detection_order(tmp_path):
    write_tone(tmp_path / "for" / "training" / "real" / "a.wav", 0.6)
    write_tone(tmp_path / "for" / "testing" / "fake" / "b.wav", 0.6)
    write_tone(tmp_path / "cls" / "human" / "c.wav", 0.6)
    write_tone(tmp_path / "cls" / "AI" / "d.wav", 0.6)
    assert datasets.detect(tmp_path / "for") == "fake_or_real"
    assert by_name(datasets.read(tmp_path / "for")[0]) == {"a.wav": ("real", "train", "", ""),
                                                          "b.wav": ("fake", "test", "", "")}
    assert by_name(datasets.read(tmp_path / "cls")[0]) == {"c.wav": ("real", "", "", ""), "d.wav": ("fake", "", "", "")}
    with pytest.raises(DatasetError, match="unknown layout 'asvspoof9'"):
        datasets.read(tmp_path / "cls", layout="asvspoof9")
    with pytest.raises(DatasetError, match="is not laid out as 'in_the_wild': expected release_in_the_wild/meta.csv"):
        datasets.read(tmp_path / "cls", layout="in_the_wild")


def test_csv_manifest_with_optional_columns_problems_and_line_numbers(tmp_path):
    write_tone(tmp_path / "audio" / "a.wav", 0.6)
    write_tone(tmp_path / "audio" / "b.wav", 0.6)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,split,group,attack,codec\naudio/a.wav,bonafide,dev,spk1,-,none\n"
                        "audio/b.wav,spoof,eval,spk2,X9,mp3\naudio/gone.wav,fake,eval,spk2,X9,mp3\n")
    table, problems = datasets.read(manifest)
    assert table.attrs["layout"] == "csv_manifest"
    assert by_name(table) == {"a.wav": ("real", "val", "spk1", "-"), "b.wav": ("fake", "test", "spk2", "X9")}
    assert datasets.metadata_columns(table) == ["codec"]
    assert problems == [(str(tmp_path / "audio" / "gone.wav"), f"audio missing: named by {manifest} line 4")]
    manifest.write_text("path,label\naudio/a.wav,real\naudio/b.wav,robot\n")
    with pytest.raises(DatasetError, match=r"list\.csv line 3: unknown label 'robot'"):
        datasets.read(manifest)


def test_render_help_lists_every_layout():
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "generate_spectrograms.py"), "--help"],
                            capture_output=True, text=True, check=True)
    help_text = " ".join(result.stdout.split())
    for name in datasets.layouts():
        assert f"{name}:" in help_text
    assert "--strict" in help_text


def test_render_and_split_a_corpus_root_carry_speakers_attacks_and_problems(tmp_path):
    from deepfake_detector.data.spectrograms import generate
    from deepfake_detector.data.splits import split_folder
    from deepfake_detector.params import Params

    root = fixtures.asvspoof2019(tmp_path / "corpus")
    out = tmp_path / "spectrograms"
    summary = generate(root, out, Params(), progress=False)
    assert summary.rendered == 6 and summary.dataset_problems == 2
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert {"group", "attack"} <= set(manifest.columns)
    assert manifest.set_index(manifest["source_path"].map(lambda path: Path(path).stem)).loc[
        "LA_T_1000002", ["official_split", "group", "attack"]].tolist() == ["train", "LA_0079", "A01"]
    errors = pd.read_csv(out / "errors.csv")
    assert len(errors) == 2 and errors["reason"].str.endswith("eval.trl.txt line 3").sum() == 1

    table, _ = split_folder(out)
    files = table.drop_duplicates("source_path").set_index(table["source_path"].map(lambda p: Path(p).stem))
    assert files.loc["LA_D_1000002", ["split", "attack"]].tolist() == ["val", "A02"]  # official dev -> val
    assert "attack" in pd.read_csv(out / "splits.csv").columns

    table, _ = split_folder(out, holdout_attacks=("A01",))  # the unseen-attack protocol
    held = table[table["attack"] == "A01"]
    assert len(held) and set(held["split"]) == {"test"}


def manifest_with_speakers(speakers: int = 12) -> pd.DataFrame:
    """One image per file; each speaker has one real and two fake files (attacks X1, X2); no official split."""
    rows = []
    for speaker in range(speakers):
        for kind, attack in (("real", "-"), ("fake", "X1"), ("fake", "X2")):
            stem = f"s{speaker}_{attack}"
            rows.append({"png_path": f"images/{kind}/{stem}.png", "class": kind, "source_path": f"/d/{stem}.wav",
                         "source_sha256": f"sha-{stem}", "window_index": 0, "official_split": "",
                         "group": f"spk{speaker}", "attack": attack, "language": "en"})
    return pd.DataFrame(rows)


def test_split_groups_by_the_manifest_speaker_and_holds_out_attacks():
    from deepfake_detector.data.splits import SplitError, make_splits

    table, _ = make_splits(manifest_with_speakers(), seed=1)
    speaker = table["source_path"].str.extract(r"/d/(s\d+)_")[0]
    assert (table.groupby(speaker)["split"].nunique() == 1).all()  # a speaker never straddles splits
    assert set(table["split"]) == {"train", "val", "test"}
    assert {"attack", "language"} <= set(table.columns)

    table, _ = make_splits(manifest_with_speakers(), seed=1, holdout_attacks=("X2",))
    assert set(table[table["attack"] == "X2"]["split"]) == {"test"}
    assert set(table[table["attack"] == "X1"]["split"]) == {"train", "val", "test"}
    with pytest.raises(SplitError, match=r"held-out attack\(s\) \['X3'\] not in the manifest; it names X1, X2"):
        make_splits(manifest_with_speakers(), holdout_attacks=("X3",))


@pytest.mark.slow
def test_split_and_train_commands_take_a_corpus_root(tmp_path, capsys):
    import argparse

    from deepfake_detector.cli import split, train

    root = fixtures.asvspoof2019(tmp_path / "corpus")
    out = tmp_path / "spectrograms"
    assert split.main(["--input", str(root), "--spectrograms", str(out), "--holdout-attacks", "A01"]) == 0
    table = pd.read_csv(out / "splits.csv", keep_default_na=False)
    assert set(table[table["attack"] == "A01"]["split"]) == {"test"}
    assert "2 dataset problem(s)" in capsys.readouterr().out
    assert split.main(["--input", str(root), "--spectrograms", str(out), "--holdout-attacks", "A99"]) == 1
    assert "held-out attack(s) ['A99'] not in the manifest" in capsys.readouterr().err

    # train --data ROOT renders (reusing the images above) and keeps the existing split.
    args = argparse.Namespace(data=root, spectrograms=out, layout=None, strict=False, seed=42)
    assert train.prepared_folder(args) == out
    assert "6 unchanged" in capsys.readouterr().out
    assert pd.read_csv(out / "splits.csv", keep_default_na=False).equals(table)
