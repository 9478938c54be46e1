"""Tiny on-the-fly copies of every corpus layout datasets/ reads: real protocol formats, synthetic clips.

Each builder writes a few 0.6 s tones (soundfile, the extension's real format) and the corpus' own protocol or
metadata files, including the odd cases: whitespace-separated .tsv with mixed tabs and spaces, '-' as the attack
of bona fide lines, ASVspoof 2021 DF's extra columns, a protocol line whose audio is missing and an audio file
no protocol line names."""
from __future__ import annotations

from pathlib import Path

from conftest import write_tone


def clip(path: Path, index: int = 0) -> Path:
    return write_tone(path, 0.6, frequency=220.0 + 40 * index, noise=0.01, seed=index)


def asvspoof2019(root: Path) -> Path:
    """LA/ with train (2 lines), dev (2 lines), eval (3 lines, one without audio) and one orphan eval clip."""
    la = root / "LA"
    protocols = {
        "train.trn": ["LA_0079 LA_T_1000001 - - bonafide", "LA_0079 LA_T_1000002 - A01 spoof"],
        "dev.trl": ["LA_0070 LA_D_1000001 - - bonafide", "LA_0070 LA_D_1000002 - A02 spoof"],
        "eval.trl": ["LA_0039 LA_E_1000001 - - bonafide", "LA_0040 LA_E_1000002 - A07 spoof",
                     "LA_0040 LA_E_1000003 - A08 spoof"],  # the last has no audio
    }
    folders = {"train.trn": "ASVspoof2019_LA_train", "dev.trl": "ASVspoof2019_LA_dev",
               "eval.trl": "ASVspoof2019_LA_eval"}
    (la / "ASVspoof2019_LA_cm_protocols").mkdir(parents=True)
    for index, (name, lines) in enumerate(protocols.items()):
        (la / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{name}.txt").write_text("\n".join(lines) + "\n")
        for number, line in enumerate(lines):
            if line.split()[1] != "LA_E_1000003":
                clip(la / folders[name] / "flac" / f"{line.split()[1]}.flac", 3 * index + number)
    clip(la / "ASVspoof2019_LA_eval" / "flac" / "LA_E_9999999.flac", 9)  # named by no protocol line
    return root


def asvspoof2019_asv_scores(root: Path) -> Path:
    """The organisers' ASV score file of the eval split: source key score."""
    folder = root / "LA" / "ASVspoof2019_LA_asv_scores"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt"
    path.write_text("bonafide target 2.0\nbonafide target 3.0\nbonafide nontarget 0.0\nbonafide nontarget 1.0\n"
                    "A07 spoof 0.5\nA08 spoof 2.5\n")
    return path


def asvspoof2021_asv_scores(root: Path, scores_trial: str | None = None) -> Path:
    """keys/LA/ASV: trial_metadata.txt (CM columns, key target/nontarget/spoof) and ASVTorch_Kaldi/score.txt
    (claimed speaker, trial, score) line by line; the progress-subset line must not count. `scores_trial`
    replaces the trial id on the score file's first line, to test the alignment check."""
    asv = [("LA_0009 LA_E_1000001 none - bonafide target notrim eval", 1.0),
           ("LA_0009 LA_E_1000002 none - bonafide target notrim eval", 3.0),
           ("LA_0012 LA_E_1000003 none - bonafide nontarget notrim eval", 0.0),
           ("LA_0012 LA_E_1000004 none - bonafide nontarget notrim eval", 2.0),
           ("LA_0009 LA_E_1000005 alaw ita_tx A07 spoof notrim eval", 0.5),
           ("LA_0009 LA_E_1000006 alaw ita_tx A07 spoof notrim eval", 2.5),
           ("LA_0009 LA_E_1000007 alaw ita_tx A07 spoof notrim progress", 9.0)]
    folder = root / "keys" / "LA" / "ASV"
    (folder / "ASVTorch_Kaldi").mkdir(parents=True, exist_ok=True)
    (folder / "trial_metadata.txt").write_text("".join(f"{line}\n" for line, _ in asv))
    score_lines = [f"{line.split()[0]} {line.split()[1]} {score}" for line, score in asv]
    if scores_trial:
        score_lines[0] = f"LA_0009 {scores_trial} 1.0"
    path = folder / "ASVTorch_Kaldi" / "score.txt"
    path.write_text("\n".join(score_lines) + "\n")
    return path


def asvspoof2021(root: Path) -> Path:
    """LA eval (keys/LA/CM) and DF eval in parts (DF-keys-full/keys/DF/CM) with DF's extra columns."""
    la_keys = ["LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval",
               "LA_0009 LA_E_9332882 none - bonafide bonafide notrim progress",
               "LA_0012 LA_E_9332883 none - bonafide bonafide notrim eval"]
    df_keys = ["LA_0043 DF_E_2000026 mp3m4a asvspoof A09 spoof notrim eval traditional_vocoder - - - -",
               "TEF2 DF_E_2000013 low_m4a vcc2020 Task1-team20 spoof notrim eval neural_vocoder_nonautoregressive "
               "Task1 team20 FF E",
               "LA_0043 DF_E_2000027 nocodec asvspoof - bonafide notrim eval bonafide - - - -"]
    for path, lines in ((root / "keys" / "LA" / "CM" / "trial_metadata.txt", la_keys),
                        (root / "DF-keys-full" / "keys" / "DF" / "CM" / "trial_metadata.txt", df_keys)):
        path.parent.mkdir(parents=True)
        path.write_text("\n".join(lines) + "\n")
    for index, line in enumerate(la_keys):
        clip(root / "ASVspoof2021_LA_eval" / "flac" / f"{line.split()[1]}.flac", index)
    for index, line in enumerate(df_keys):
        clip(root / "ASVspoof2021_DF_eval_part00" / "ASVspoof2021_DF_eval" / "flac" / f"{line.split()[1]}.flac",
             index + 3)
    return root


def asvspoof5(root: Path) -> Path:
    """Protocols in ASVspoof5_protocols/ (a .tsv mixing tabs and runs of spaces), audio in flac_T/D/E_eval."""
    protocols = {
        ("ASVspoof5.train.tsv", "flac_T"): ["T_4850\tT_0000000000\tF\t-\t-\t-\tAC3\tA05\tspoof\t-",
                                            "T_4850  T_0000000001  F  -  -  -  bonafide  bonafide  bonafide  -"],
        ("ASVspoof5.dev.track_1.tsv", "flac_D"): ["D_0062 D_0000000001 M - - - AC1 A11 spoof -",
                                                  "D_0062 D_0000000002 M - - - - - bonafide -"],
        ("ASVspoof5.eval.track_1.tsv", "flac_E_eval"): ["E_0001 E_0000000001 F C05 3 11 AC2 A20 spoof -",
                                                        "E_0002 E_0000000002 M - 0 - - - bonafide -"],
    }
    (root / "ASVspoof5_protocols").mkdir(parents=True)
    for index, ((name, folder), lines) in enumerate(protocols.items()):
        (root / "ASVspoof5_protocols" / name).write_text("\n".join(lines) + "\n")
        for number, line in enumerate(lines):
            clip(root / folder / f"{line.split()[1]}.flac", 2 * index + number)
    return root


def in_the_wild(root: Path) -> Path:
    folder = root / "release_in_the_wild"
    rows = [("0.wav", "Alec Guinness", "spoof"), ("1.wav", "Alec Guinness", "bona-fide"),
            ("2.wav", "Barack Obama", "bona-fide"), ("3.wav", "Barack Obama", "spoof")]
    folder.mkdir(parents=True)
    (folder / "meta.csv").write_text("file,speaker,label\n" + "".join(f"{f},{s},{l}\n" for f, s, l in rows))
    for index, (name, _, _) in enumerate(rows):
        clip(folder / name, index)
    return root


def wavefake(root: Path) -> Path:
    for index, folder in enumerate(("ljspeech_melgan", "ljspeech_hifiGAN")):
        clip(root / "generated_audio" / folder / "LJ001-0001_gen.wav", index)
        clip(root / "generated_audio" / folder / "LJ001-0002_gen.wav", index + 2)
    clip(root / "generated_audio" / "jsut_parallel_wavegan" / "BASIC5000_0001_gen.wav", 4)
    clip(root / "LJSpeech-1.1" / "wavs" / "LJ001-0001.wav", 5)
    clip(root / "LJSpeech-1.1" / "wavs" / "LJ001-0002.wav", 6)
    clip(root / "jsut_ver1.1" / "basic5000" / "wav" / "BASIC5000_0001.wav", 7)
    return root


def mlaad(root: Path) -> Path:
    model = root / "fake" / "de" / "facebook_mms-tts-deu"
    clip(model / "mms_1.wav", 0)
    clip(model / "mms_2.wav", 1)
    (model / "meta.csv").write_text("path|original_file|language|model_name|architecture\n"
                                    "./fake/de/facebook_mms-tts-deu/mms_1.wav|a.wav|German|mms|VITS\n"
                                    "./fake/de/facebook_mms-tts-deu/mms_2.wav|b.wav|German|mms|VITS\n")
    clip(root / "fake" / "en" / "tts_models_en_ljspeech_tacotron2-DDC" / "t_1.wav", 2)
    clip(root / "mailabs" / "de_DE" / "by_book" / "female" / "eva_k" / "grune_haus" / "wavs" / "g_0001.wav", 3)
    clip(root / "mailabs" / "en_US" / "by_book" / "male" / "elliot_miller" / "pirates" / "wavs" / "p_0001.wav", 4)
    return root
