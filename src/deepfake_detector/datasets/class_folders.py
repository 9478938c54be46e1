"""Class folders: `root/<class>/...` where <class> is real/fake or a synonym (bonafide, spoof, human, ai...).

A class folder may hold `training/validation/testing` (or train/val/test/dev/eval) sub-folders, which give the
official split. Hidden folders and loose files at the top are ignored."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import DatasetError, Problem, make_table
from deepfake_detector.params import AUDIO_EXTENSIONS, canonical_class
from deepfake_detector.data.splits import canonical_split

NAME = "class_folders"
DESCRIPTION = "<class>/... folders named real/fake or synonyms (bonafide, spoof, human, ai, ...)"
PRIORITY = 90  # the fallback for any folder with sub-folders: reading names a sub-folder that is not a class


def subfolders(folder: Path) -> list[Path]:
    # Hidden folders (.git, .cache) are never data.
    return sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))


def detect(root: Path) -> bool:
    return root.is_dir() and bool(subfolders(root))


def class_folder_rows(class_folder: Path, official_split: str) -> list[dict]:
    """Every audio file under one class folder (recursive); a split folder just below the class gives the split."""
    try:
        label = canonical_class(class_folder.name)
    except ValueError as error:
        raise DatasetError(str(error)) from error
    rows = []
    for path in class_folder.rglob("*"):
        if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
            continue
        inner = canonical_split(path.relative_to(class_folder).parts[0]) if path.parent != class_folder else None
        rows.append({"path": os.path.abspath(path), "label": label, "split": official_split or inner or ""})
    return rows


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    rows = [row for folder in subfolders(root) for row in class_folder_rows(folder, official_split="")]
    return make_table(rows), []
