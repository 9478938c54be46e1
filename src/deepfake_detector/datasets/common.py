"""The interface every corpus reader follows, and the helpers they share.

A layout is a module in this package with NAME, DESCRIPTION, PRIORITY (detection order, lower first),
`detect(root) -> bool` and `read(root) -> (table, problems)`. `read` returns one row per audio file with the
columns TABLE_COLUMNS (path absolute; label 'real'/'fake'; split 'train'/'val'/'test' or ''; group = speaker or
another unit that must not straddle splits; attack = system id, '-' for bona fide, '' when the corpus names none)
followed by metadata columns the corpus carries (codec, language, vocoder, ...). `problems` lists (file, reason)
pairs: protocol lines without audio and audio that no protocol line names. They are never dropped silently.
Malformed lines and unknown label words raise DatasetError naming the file and line.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deepfake_detector.params import AUDIO_EXTENSIONS, CLASS_SYNONYMS

TABLE_COLUMNS = ["path", "label", "split", "group", "attack"]
BONA_FIDE_ATTACK = "-"

Problem = tuple[str, str]  # (file, reason), the rows of errors.csv


class DatasetError(ValueError):
    """The dataset root cannot be read; str(error) is a one-line reason naming the file (and line)."""


def label_of(word: str, where: str) -> str:
    """'bonafide', 'bona-fide', 'spoof', ... -> 'real' / 'fake' through params.CLASS_SYNONYMS."""
    label = CLASS_SYNONYMS.get(word.strip().lower())
    if label is None:
        raise DatasetError(f"{where}: unknown label '{word}'; expected one of {', '.join(sorted(CLASS_SYNONYMS))}")
    return label


def read_protocol(path: Path, min_fields: int) -> list[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of every non-blank line; a short line is an error."""
    entries = []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < min_fields:
                raise DatasetError(f"{path} line {number}: {len(fields)} field(s), expected at least {min_fields}: "
                                   f"{line.strip()[:80]!r}")
            entries.append((number, fields))
    return entries


def audio_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Audio files in `folder` (and below when `recursive`), from directory listings only: one scandir per folder
    instead of a stat per protocol line is what keeps checking a 200k-line protocol to about a second."""
    found: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir() and recursive and not entry.name.startswith("."):
                pending.append(Path(entry.path))
            elif os.path.splitext(entry.name)[1].lower() in AUDIO_EXTENSIONS and entry.is_file():
                found.append(Path(entry.path))
    return sorted(found)


def audio_by_stem(folder: Path, recursive: bool = False) -> dict[str, Path]:
    """Audio files keyed by file name without extension (protocols name files by that id)."""
    return {path.stem: path for path in audio_files(folder, recursive)}


def join_audio(records: list[dict], audio: dict[str, Path], protocol: Path, audio_folder: Path,
               extension: str = ".flac") -> tuple[list[dict], list[Problem]]:
    """Give each protocol record (keys 'key' = audio stem, 'line', and table fields) its audio path.

    Returns the rows with audio, and problems for lines whose audio is missing and for audio in `audio_folder`
    that no line names."""
    rows, problems, named = [], [], set()
    for record in records:
        key, line = record.pop("key"), record.pop("line")
        named.add(key)
        path = audio.get(key)
        if path is None:
            problems.append((str(audio_folder / f"{key}{extension}"),
                             f"audio missing: named by {protocol} line {line}"))
        else:
            rows.append({"path": str(path.resolve()), **record})
    return rows, problems + orphan_problems(audio, named, protocol)


def orphan_problems(audio: dict[str, Path], named: set[str], protocol: Path) -> list[Problem]:
    return [(str(path), f"audio named by no line of {protocol}") for key, path in sorted(audio.items())
            if key not in named]


def make_table(rows: list[dict], metadata: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows -> a table with TABLE_COLUMNS then `metadata`; missing values become ''."""
    columns = TABLE_COLUMNS + [column for column in metadata if column not in TABLE_COLUMNS]
    return pd.DataFrame(rows, columns=columns).astype(object).fillna("").astype(str)


def first_existing(*candidates: Path) -> Path | None:
    return next((candidate for candidate in candidates if candidate.exists()), None)


def find_named(root: Path, name: str, max_depth: int = 4, skip=("flac", "wav", "wavs")) -> list[Path]:
    """Files called `name` within `max_depth` folder levels of `root`, never descending into audio folders
    (which hold hundreds of thousands of entries)."""
    found, level = [], [root]
    for _ in range(max_depth + 1):
        next_level = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
            for entry in entries:
                if entry.name == name and entry.is_file():
                    found.append(Path(entry.path))
                elif entry.is_dir() and entry.name not in skip and not entry.name.startswith("."):
                    next_level.append(Path(entry.path))
        level = next_level
    return sorted(found)
