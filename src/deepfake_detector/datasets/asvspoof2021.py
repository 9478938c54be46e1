"""ASVspoof 2021 LA and DF evaluation sets with the released keys.

Audio: `ASVspoof2021_{LA,DF}_eval*/flac/` (DF ships in parts: `ASVspoof2021_DF_eval_part00/ASVspoof2021_DF_eval/flac`).
Keys: `.../keys/{LA,DF}/CM/trial_metadata.txt`, whitespace-separated:
    LA: speaker trial codec transmission attack key trim subset
    DF: speaker trial codec source attack key trim subset vocoder [four more columns]
Every file is in split 'test'; codec, transmission (LA), source and vocoder (DF), subset (eval/progress/
hidden_track) and trim are kept as metadata, so evaluation reports EER per value.
The organisers' ASV system for LA (`keys/LA/ASV/trial_metadata.txt`, the same columns with key target/nontarget/
spoof, and `keys/LA/ASV/ASVTorch_Kaldi/score.txt`: claimed speaker, trial, score, line by line) feeds the revised
min t-DCF on the official ranking's subset, LA 'eval'. DF has no t-DCF."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import (BONA_FIDE_ATTACK, AsvScores, DatasetError, Problem, audio_by_stem,
                                               concat, find_named, join_audio, labels_of, make_table,
                                               protocol_frame, read_protocol)

NAME = "asvspoof2021"
DESCRIPTION = "ASVspoof 2021 LA/DF eval (ASVspoof2021_{LA,DF}_eval*/flac + keys/{LA,DF}/CM/trial_metadata.txt)"
PRIORITY = 15
TRACKS = ("LA", "DF")
METADATA = ("track", "codec", "transmission", "source", "vocoder", "subset", "trim")
TDCF_SUBSET = "eval"  # the subset of the official 2021 ranking


def _key_files(root: Path, kind: str) -> dict[str, Path]:
    """Track -> its {CM,ASV}/trial_metadata.txt (the first found when several copies are unpacked)."""
    found = {}
    for path in find_named(root, "trial_metadata.txt", max_depth=5):
        track = path.parent.parent.name.upper()
        if path.parent.name == kind and track in TRACKS:
            found.setdefault(track, path)
    return found


def key_files(root: Path) -> dict[str, Path]:
    return _key_files(root, "CM")


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


def asv_scores(root: Path, split: str) -> AsvScores | None:
    """The organisers' LA ASV scores on the 'eval' subset (revised t-DCF, LA eval CM rows), or None when the
    ASV keys or scores are not on disk. Score and key files must name the same trial on every line."""
    keys = _key_files(root, "ASV").get("LA")
    score_files = sorted(keys.parent.glob("*/score.txt")) if keys else []
    if split != "test" or not score_files:
        return None
    key_entries, score_entries = read_protocol(keys, min_fields=8), read_protocol(score_files[0], min_fields=3)
    if len(key_entries) != len(score_entries):
        raise DatasetError(f"{score_files[0]}: {len(score_entries)} scores for the {len(key_entries)} trials of "
                           f"{keys}")
    rows = []
    for (_, key), (line, score) in zip(key_entries, score_entries):
        if key[1] != score[1]:
            raise DatasetError(f"{score_files[0]} line {line}: trial {score[1]}, but {keys} names {key[1]} there")
        if key[7] == TDCF_SUBSET:
            rows.append((key[5], float(score[2])))
    if not rows:
        return None
    return AsvScores([key for key, _ in rows], [score for _, score in rows], cost_model="asvspoof2021",
                     cm_rows=(("track", "LA"), ("subset", TDCF_SUBSET)))
