"""In-the-Wild (Müller et al. 2022): `release_in_the_wild/meta.csv` (file,speaker,label with labels
bona-fide/spoof) beside the wav files. No official split and no attack ids: speakers are the groups."""
from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import (BONA_FIDE_ATTACK, DatasetError, Problem, audio_by_stem,
                                               join_audio, label_of, make_table)

NAME = "in_the_wild"
DESCRIPTION = "release_in_the_wild/meta.csv (file,speaker,label) beside the wavs"
PRIORITY = 40
FOLDER = "release_in_the_wild"


def corpus_dir(root: Path) -> Path:
    return root / FOLDER if (root / FOLDER / "meta.csv").is_file() else root


def detect(root: Path) -> bool:
    meta = corpus_dir(root) / "meta.csv"
    if not meta.is_file():
        return False
    with open(meta, encoding="utf-8") as stream:
        header = [name.strip() for name in stream.readline().split(",")]
    return header[:3] == ["file", "speaker", "label"]


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    folder = corpus_dir(root)
    meta = folder / "meta.csv"
    records = []
    with open(meta, encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream)
        next(reader, None)
        for number, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) < 3:
                raise DatasetError(f"{meta} line {number}: {len(fields)} field(s), expected file,speaker,label")
            file_name, speaker, word = (field.strip() for field in fields[:3])
            label = label_of(word, meta, number)
            records.append({"key": Path(file_name).stem, "line": number, "label": label, "split": "",
                            "group": speaker, "attack": BONA_FIDE_ATTACK if label == "real" else ""})
    frame = pd.DataFrame(records, columns=["key", "line", "label", "split", "group", "attack"])
    found, problems = join_audio(frame, audio_by_stem(folder), meta, folder, extension=".wav")
    return make_table(found), problems
