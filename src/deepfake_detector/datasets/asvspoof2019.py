"""ASVspoof 2019 logical access: protocols
`LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt` (lines: speaker utterance
- attack key; the attack of bona fide lines is '-', which is BONA_FIDE_ATTACK) and audio in
`LA/ASVspoof2019_LA_{train,dev,eval}/flac/`.
Official splits train/dev/eval become train/val/test. The root is the folder holding LA/ or LA/ itself.
The organisers' ASV scores (`ASVspoof2019_LA_asv_scores/*.gi.trl.scores.txt`) feed min t-DCF."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import (AsvScores, Problem, audio_by_stem, concat, join_audio, labels_of,
                                               make_table, protocol_frame, read_protocol)

NAME = "asvspoof2019_la"
DESCRIPTION = "ASVspoof 2019 LA (LA/ASVspoof2019_LA_cm_protocols + ASVspoof2019_LA_{train,dev,eval}/flac)"
PRIORITY = 10
PROTOCOL_FOLDER = "ASVspoof2019_LA_cm_protocols"
# split -> (protocol file, audio folder, ASV score file or None)
SPLITS = {
    "train": ("ASVspoof2019.LA.cm.train.trn.txt", "ASVspoof2019_LA_train", None),
    "val": ("ASVspoof2019.LA.cm.dev.trl.txt", "ASVspoof2019_LA_dev", "ASVspoof2019.LA.asv.dev.gi.trl.scores.txt"),
    "test": ("ASVspoof2019.LA.cm.eval.trl.txt", "ASVspoof2019_LA_eval", "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt"),
}


def corpus_dir(root: Path) -> Path:
    return root / "LA" if (root / "LA" / PROTOCOL_FOLDER).is_dir() else root


def detect(root: Path) -> bool:
    folder = corpus_dir(root) / PROTOCOL_FOLDER
    return folder.is_dir() and any((folder / protocol).is_file() for protocol, _, _ in SPLITS.values())


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    corpus = corpus_dir(root)
    frames, problems = [], []
    for split, (protocol_name, audio_name, _) in SPLITS.items():
        protocol = corpus / PROTOCOL_FOLDER / protocol_name
        if not protocol.is_file():
            continue
        frame = protocol_frame(read_protocol(protocol, min_fields=5), {"group": 0, "key": 1, "attack": 3, "word": 4})
        frame = frame.assign(label=labels_of(frame["word"], protocol, frame["line"]), split=split)
        audio_folder = corpus / audio_name / "flac"
        found, missing = join_audio(frame, audio_by_stem(audio_folder), protocol, audio_folder)
        frames.append(found)
        problems += missing
    return make_table(concat(frames)), problems


def asv_score_file(root: Path, split: str) -> Path | None:
    """The organisers' ASV score file for a split (for min t-DCF), or None when it is not on disk."""
    name = SPLITS.get(split, (None, None, None))[2]
    if name is None:
        return None
    path = corpus_dir(root) / "ASVspoof2019_LA_asv_scores" / name
    return path if path.is_file() else None


def asv_scores(root: Path, split: str) -> AsvScores | None:
    """The organisers' ASV scores on a split (legacy t-DCF, every CM row), or None when not on disk."""
    path = asv_score_file(root, split)
    if path is None:
        return None
    entries = read_protocol(path, min_fields=3)  # lines: source (bonafide or attack) key score
    return AsvScores([fields[1] for _, fields in entries], [float(fields[2]) for _, fields in entries],
                     cost_model="asvspoof2019")
