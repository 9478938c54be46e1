"""MLAAD (Müller et al. 2024): `fake/<language>/<model>/*.wav` (each model folder may hold a meta.csv naming the
architecture) paired with M-AILABS reals `<mailabs>/<lang>_<REGION>/by_book/<gender>/<speaker>/<book>/wavs/*.wav`,
where <mailabs> is `mailabs/`, `M-AILABS/` or `real/` under the root.

attack = the TTS model folder, metadata language (and architecture where meta.csv names it). group = the speaker
for reals and the model for fakes (a model's voice is its speaker), so no voice is in two splits."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import BONA_FIDE_ATTACK, Problem, audio_files, make_table

NAME = "mlaad"
DESCRIPTION = "MLAAD fake/<language>/<model>/ + M-AILABS reals (mailabs/<lang>/by_book/<gender>/<speaker>/...)"
PRIORITY = 50
REAL_FOLDERS = ("mailabs", "M-AILABS", "m-ailabs", "real")
METADATA = ("language", "architecture")


def model_folders(root: Path) -> list[Path]:
    fake = root / "fake"
    if not fake.is_dir():
        return []
    return sorted(model for language in fake.iterdir() if language.is_dir()
                  for model in language.iterdir() if model.is_dir())


def real_books(root: Path) -> list[Path]:
    """Every M-AILABS `by_book` folder under the real corpus folders."""
    return sorted(book for name in REAL_FOLDERS if (root / name).is_dir()
                  for book in (root / name).glob("*/by_book"))


def detect(root: Path) -> bool:
    # MLAAD's fake/ has two levels (language, model); a class folder 'fake/' alone does not make it MLAAD.
    return bool(real_books(root)) or any((model / "meta.csv").is_file() for model in model_folders(root)[:50])


def architectures(model: Path) -> dict[str, str]:
    """File name -> architecture from the model folder's meta.csv ({} when absent or unreadable)."""
    meta = model / "meta.csv"
    if not meta.is_file():
        return {}
    try:
        with open(meta, encoding="utf-8") as stream:
            separator = "|" if "|" in stream.readline() else ","  # MLAAD writes '|'; accept a plain CSV too
        table = pd.read_csv(meta, sep=separator, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return {}
    if not {"path", "architecture"} <= set(table.columns):
        return {}
    return {Path(path).name: architecture for path, architecture in zip(table["path"], table["architecture"])}


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    rows, problems = [], []
    for model in model_folders(root):
        known = architectures(model)
        rows += [{"path": path, "label": "fake", "split": "", "group": f"model:{model.name}", "attack": model.name,
                  "language": model.parent.name, "architecture": known.get(os.path.basename(path), "")}
                 for path in audio_files(model, recursive=True)]
    for book in real_books(root):
        language = book.parent.name.split("_")[0]
        for path in audio_files(book, recursive=True):
            parts = Path(os.path.relpath(path, os.path.abspath(book))).parts  # <gender>/<speaker>/<book>/wavs/x
            speaker = parts[1] if len(parts) > 2 else "unknown"
            rows.append({"path": path, "label": "real", "split": "", "group": f"speaker:{speaker}",
                         "attack": BONA_FIDE_ATTACK, "language": language, "architecture": ""})
    if not real_books(root):
        problems.append((str(root / "mailabs"), "no real clips: put M-AILABS (<lang>/by_book/...) in mailabs/ "
                                                "beside fake/"))
    return make_table(rows, METADATA), problems
