"""Fake-or-Real (for-norm, for-2sec, for-rerec, ...): `root/<split>/<class>/...` with split folders
training/validation/testing and class folders real/fake. Top-level class folders beside the split folders are
read as plain class folders."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfake_detector.data.splits import canonical_split
from deepfake_detector.datasets.class_folders import class_folder_rows, subfolders
from deepfake_detector.datasets.common import Problem, make_table

NAME = "fake_or_real"
DESCRIPTION = "<split>/<class>/... as Fake-or-Real ships (training|validation|testing / real|fake)"
PRIORITY = 80


def detect(root: Path) -> bool:
    return root.is_dir() and any(canonical_split(child.name) for child in subfolders(root))


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    rows = []
    for top in subfolders(root):
        split = canonical_split(top.name)
        if split is None:
            rows += class_folder_rows(top, official_split="")
        else:
            for class_folder in subfolders(top):
                rows += class_folder_rows(class_folder, official_split=split)
    return make_table(rows), []
