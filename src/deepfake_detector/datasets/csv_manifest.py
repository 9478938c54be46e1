"""A CSV manifest: columns path,label and optionally split,group,attack; any other column is metadata (codec,
language, speaker_or_system, ...). Paths are relative to the CSV's folder (or absolute). The root is the .csv."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deepfake_detector.data.splits import SPLIT_SYNONYMS, canonical_split
from deepfake_detector.datasets.common import DatasetError, Problem, existing, label_of, make_table

NAME = "csv_manifest"
DESCRIPTION = "a .csv file with columns path,label[,split,group,attack,<metadata>...], paths relative to it"
PRIORITY = 0
OPTIONAL = ("split", "group", "attack")


def detect(root: Path) -> bool:
    return root.is_file() and root.suffix.lower() == ".csv"


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    try:
        manifest = pd.read_csv(root, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DatasetError(f"{root} is not a readable CSV: {str(error).splitlines()[0]}") from error
    missing = [column for column in ("path", "label") if column not in manifest.columns]
    if missing:
        raise DatasetError(f"{root} lacks column(s) {missing}; it needs 'path' and 'label'")
    metadata = [column for column in manifest.columns if column not in ("path", "label") + OPTIONAL]
    base = os.path.dirname(os.path.abspath(root))
    paths = [os.path.abspath(os.path.join(base, path)) for path in manifest["path"]]  # absolute paths stay
    rows, problems = [], []
    for index, (record, path, exists) in enumerate(zip(manifest.to_dict("records"), paths, existing(paths))):
        line = index + 2  # line 1 is the header
        row = {**record, "path": path, "label": label_of(record["label"], root, line),
               "split": _split_of(record.get("split", ""), root, line)}
        if record["path"] and exists:
            rows.append(row)
        else:
            problems.append((path, f"audio missing: named by {root} line {line}"))
    return make_table(rows, metadata), problems


def _split_of(word: str, root: Path, line: int) -> str:
    if not word.strip():
        return ""
    split = canonical_split(word)
    if split is None:
        raise DatasetError(f"{root} line {line}: unknown split '{word}'; expected one of {', '.join(SPLIT_SYNONYMS)}")
    return split
