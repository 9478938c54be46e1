"""ASVspoof 2021 LA and DF evaluation sets with the released keys.

Audio: `ASVspoof2021_{LA,DF}_eval*/flac/` (DF ships in parts: `ASVspoof2021_DF_eval_part00/ASVspoof2021_DF_eval/flac`).
Keys: `.../keys/{LA,DF}/CM/trial_metadata.txt`, whitespace-separated:
    LA: speaker trial codec transmission attack key trim subset
    DF: speaker trial codec source attack key trim subset vocoder [four more columns]
Every file is in split 'test'; codec, transmission (LA), source and vocoder (DF), subset (eval/progress/
hidden_track) and trim are kept as metadata, so evaluation reports EER per value."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import (BONA_FIDE_ATTACK, Problem, audio_by_stem, concat, find_named,
                                               join_audio, labels_of, make_table, protocol_frame, read_protocol)

NAME = "asvspoof2021"
DESCRIPTION = "ASVspoof 2021 LA/DF eval (ASVspoof2021_{LA,DF}_eval*/flac + keys/{LA,DF}/CM/trial_metadata.txt)"
PRIORITY = 15
TRACKS = ("LA", "DF")
METADATA = ("track", "codec", "transmission", "source", "vocoder", "subset", "trim")


def key_files(root: Path) -> dict[str, Path]:
    """Track -> its CM trial_metadata.txt (the first found when several copies are unpacked)."""
    found = {}
    for path in find_named(root, "trial_metadata.txt", max_depth=5):
        track = path.parent.parent.name.upper()
        if path.parent.name == "CM" and track in TRACKS:
            found.setdefault(track, path)
    return found


def audio_folders(root: Path, track: str) -> list[Path]:
    patterns = [f"ASVspoof2021_{track}_eval*/flac", f"ASVspoof2021_{track}_eval*/ASVspoof2021_{track}_eval/flac"]
    folders = [folder for pattern in patterns for folder in root.glob(pattern)]
    if root.name.startswith(f"ASVspoof2021_{track}_eval") and (root / "flac").is_dir():
        folders.append(root / "flac")
    return sorted(set(folders))


def detect(root: Path) -> bool:
    return root.is_dir() and any(audio_folders(root, track) for track in key_files(root))


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    frames, problems = [], []
    for track, keys in sorted(key_files(root).items()):
        folders = audio_folders(root, track)
        if not folders:
            continue
        frame = protocol_frame(read_protocol(keys, min_fields=8), {
            "group": 0, "key": 1, "codec": 2, "condition": 3, "attack": 4, "word": 5, "trim": 6, "subset": 7,
            "vocoder": 8})
        frame["label"] = labels_of(frame["word"], keys, frame["line"])
        frame.loc[(frame["label"] == "real") | (frame["attack"] == "bonafide"), "attack"] = BONA_FIDE_ATTACK
        # The 4th column is the transmission channel in LA and the source corpus in DF; only DF names vocoders.
        frame = frame.assign(split="test", track=track, transmission=frame["condition"] if track == "LA" else "",
                             source=frame["condition"] if track == "DF" else "",
                             vocoder=frame["vocoder"] if track == "DF" else "")
        audio = {stem: path for folder in folders for stem, path in audio_by_stem(folder).items()}
        found, missing = join_audio(frame, audio, keys, folders[0])
        frames.append(found)
        problems += missing
    return make_table(concat(frames), METADATA), problems
