"""ASVspoof 5, track 1: protocols `ASVspoof5.train.tsv`, `ASVspoof5.dev.track_1.tsv`, `ASVspoof5.eval.track_1.tsv`
(at the root or in `ASVspoof5_protocols/`; whitespace-separated despite the name:
speaker file gender codec codec_q codec_seed attack_tag attack_label key [tmp]) with audio in `flac_T/`,
`flac_D/` and `flac_E*/`. Official splits train/dev/eval become train/val/test."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import (BONA_FIDE_ATTACK, Problem, audio_by_stem, concat, first_existing,
                                               join_audio, labels_of, make_table, protocol_frame, read_protocol)

NAME = "asvspoof5"
DESCRIPTION = "ASVspoof 5 track 1 (ASVspoof5.{train,dev.track_1,eval.track_1}.tsv + flac_T|D|E*)"
PRIORITY = 20
SPLITS = {"train": ("ASVspoof5.train.tsv", "flac_T"), "val": ("ASVspoof5.dev.track_1.tsv", "flac_D"),
          "test": ("ASVspoof5.eval.track_1.tsv", "flac_E*")}
METADATA = ("gender", "codec", "codec_q")


def protocol_path(root: Path, name: str) -> Path | None:
    return first_existing(root / name, root / "ASVspoof5_protocols" / name)


def detect(root: Path) -> bool:
    return root.is_dir() and any(protocol_path(root, name) for name, _ in SPLITS.values())


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    frames, problems = [], []
    for split, (protocol_name, audio_pattern) in SPLITS.items():
        protocol = protocol_path(root, protocol_name)
        if protocol is None:
            continue
        folders = sorted(root.glob(audio_pattern))
        audio = {stem: path for folder in folders for stem, path in audio_by_stem(folder, recursive=True).items()}
        frame = protocol_frame(read_protocol(protocol, 9), {"group": 0, "key": 1, "gender": 2, "codec": 3,
                                                            "codec_q": 4, "attack": 7, "word": 8})
        frame["label"] = labels_of(frame["word"], protocol, frame["line"])
        frame["split"] = split
        frame.loc[(frame["label"] == "real") | (frame["attack"] == "bonafide"), "attack"] = BONA_FIDE_ATTACK
        found, missing = join_audio(frame, audio, protocol, folders[0] if folders else root / audio_pattern)
        frames.append(found)
        problems += missing
    return make_table(concat(frames), METADATA), problems
