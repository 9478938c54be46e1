"""The interface every corpus reader follows, and the helpers they share.

A layout is a module in this package with NAME, DESCRIPTION, PRIORITY (detection order, lower first),
`detect(root) -> bool` and `read(root) -> (table, problems)`. `read` returns one row per audio file with the
columns TABLE_COLUMNS (path absolute; label 'real'/'fake'; split 'train'/'val'/'test' or ''; group = speaker or
another unit that must not straddle splits; attack = system id, '-' for bona fide, '' when the corpus names none)
followed by metadata columns the corpus carries (codec, language, vocoder, ...). `problems` lists (file, reason)
pairs: protocol lines without audio and audio that no protocol line names. They are never dropped silently.
Malformed lines and unknown label words raise DatasetError naming the file and line.
A layout whose organisers publish ASV scores may also define `asv_scores(root, split) -> AsvScores | None`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepfake_detector.params import AUDIO_EXTENSIONS, CLASS_SYNONYMS

TABLE_COLUMNS = ["path", "label", "split", "group", "attack"]
BONA_FIDE_ATTACK = "-"

Problem = tuple[str, str]  # (file, reason), the rows of errors.csv


@dataclass(frozen=True)
class AsvScores:
    """The organisers' ASV system on one evaluation set, for min t-DCF: a key ('target', 'nontarget', 'spoof')
    and a score per ASV trial; the cost model (a name in report.metrics.MIN_TDCF); and the CM rows the official
    figure covers, as (column, value) pairs that every counted row must match (e.g. ASVspoof 2021 LA: track LA,
    subset eval)."""
    keys: list[str]
    scores: list[float]
    cost_model: str
    cm_rows: tuple[tuple[str, str], ...] = ()


class DatasetError(ValueError):
    """The dataset root cannot be read; str(error) is a one-line reason naming the file (and line)."""


def label_of(word: str, file: Path | str, line: int | None = None) -> str:
    """'bonafide', 'bona-fide', 'spoof', ... -> 'real' / 'fake' through params.CLASS_SYNONYMS; an unknown word is
    an error naming the file and line."""
    label = CLASS_SYNONYMS.get(word) or CLASS_SYNONYMS.get(word.strip().lower())
    if label is None:
        where = f"{file} line {line}" if line is not None else str(file)
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


def _audio_entries(folder: Path, recursive: bool) -> list[os.DirEntry]:
    # Directory listings only, no Path object or stat per file: one scandir per folder instead of a stat per
    # protocol line is what keeps checking a 200k-line protocol to seconds (bench/dataset_read.py).
    found: list[os.DirEntry] = []
    pending = [os.path.abspath(folder)]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if recursive and not entry.name.startswith(".") and entry.is_dir():
                pending.append(entry.path)
            elif entry.name[entry.name.rfind("."):].lower() in AUDIO_EXTENSIONS and entry.is_file():
                found.append(entry)
    return found


def audio_files(folder: Path, recursive: bool = False) -> list[str]:
    """Absolute paths (strings) of the audio files in `folder` (and below when `recursive`), sorted."""
    return sorted(entry.path for entry in _audio_entries(folder, recursive))


def audio_by_stem(folder: Path, recursive: bool = False) -> dict[str, str]:
    """Audio files keyed by file name without extension (protocols name files by that id)."""
    return {entry.name.rpartition(".")[0]: entry.path for entry in _audio_entries(folder, recursive)}


def existing(paths: list[str]) -> list[bool]:
    """Whether each absolute path is a file, from one listing per distinct folder (not one stat per path)."""
    listings: dict[str, set[str]] = {}
    for folder in {os.path.dirname(path) for path in paths}:
        try:
            listings[folder] = {entry.name for entry in os.scandir(folder) if entry.is_file()}
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            listings[folder] = set()
    return [os.path.basename(path) in listings[os.path.dirname(path)] for path in paths]


def labels_of(words: pd.Series, file: Path, lines: pd.Series) -> pd.Series:
    """label_of for a whole column, looking each distinct word up once; an error names the first bad line."""
    mapping = {}
    for word in words.unique():
        try:
            mapping[word] = label_of(word, file)
        except DatasetError:
            label_of(word, file, int(lines[words == word].iloc[0]))
    return words.map(mapping)


def protocol_frame(entries: list[tuple[int, list[str]]], fields: dict[str, int]) -> pd.DataFrame:
    """Protocol entries -> a frame with a `line` column and one column per name in `fields` (name -> index)."""
    frame = pd.DataFrame([[values[index] if index < len(values) else "" for index in fields.values()]
                          for _, values in entries], columns=list(fields), dtype=object)
    frame["line"] = [number for number, _ in entries]
    return frame


def join_audio(frame: pd.DataFrame, audio: dict[str, str], protocol: Path, audio_folder: Path,
               extension: str = ".flac") -> tuple[pd.DataFrame, list[Problem]]:
    """Give each protocol row (columns 'key' = audio stem, 'line', and table fields) its audio path.

    Returns the rows with audio (a 'path' column instead of key and line), and problems for lines whose audio
    is missing and for audio that no line names."""
    paths = frame["key"].map(audio)
    missing = frame[paths.isna()]
    problems = [(str(audio_folder / f"{key}{extension}"), f"audio missing: named by {protocol} line {line}")
                for key, line in zip(missing["key"], missing["line"])]
    found = frame[paths.notna()].assign(path=paths[paths.notna()]).drop(columns=["key", "line"])
    return found, problems + orphan_problems(audio, set(frame["key"]), protocol)


def orphan_problems(audio: dict[str, str], named: set[str], protocol: Path) -> list[Problem]:
    return [(audio[key], f"audio named by no line of {protocol}") for key in sorted(audio.keys() - named)]


def make_table(rows: list[dict] | pd.DataFrame, metadata: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Row dicts (or a frame) -> a table with TABLE_COLUMNS then `metadata`; missing values become ''."""
    columns = TABLE_COLUMNS + [column for column in metadata if column not in TABLE_COLUMNS]
    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    return table.reindex(columns=columns).astype(object).fillna("").astype(str)


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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
