"""Readers for the public anti-spoofing corpora and for home-made layouts, behind one interface.

    table, problems = datasets.read(root)                   # layout detected from the files that define it
    table, problems = datasets.read(root, layout="in_the_wild", strict=True)

Each layout is one module of this package (see common.py for what it must define); adding a corpus is adding a
file. `layouts()` lists them in detection order.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pandas as pd

from deepfake_detector.datasets.common import BONA_FIDE_ATTACK, TABLE_COLUMNS, AsvScores, DatasetError, Problem

__all__ = ["BONA_FIDE_ATTACK", "TABLE_COLUMNS", "AsvScores", "DatasetError", "Problem", "add_dataset_arguments",
           "asv_scores", "detect", "layouts", "layout_help", "metadata_columns", "read"]

_NOT_LAYOUTS = {"common"}


def layouts() -> dict[str, ModuleType]:
    """Layout name -> reader module, in detection order."""
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
               if info.name not in _NOT_LAYOUTS]
    modules = sorted((module for module in modules if hasattr(module, "NAME")),
                     key=lambda module: (module.PRIORITY, module.NAME))
    return {module.NAME: module for module in modules}


def layout_help() -> str:
    """One line per layout, for --help texts."""
    return "; ".join(f"{name}: {module.DESCRIPTION}" for name, module in layouts().items())


def detect(root: Path) -> str:
    """The name of the first layout whose defining files are under `root`."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset root {root} does not exist")
    for name, module in layouts().items():
        if module.detect(root):
            return name
    raise DatasetError(f"{root} matches no known layout ({', '.join(layouts())}); pass --layout NAME")


def layout_module(name: str) -> ModuleType:
    known = layouts()
    if name not in known:
        raise DatasetError(f"unknown layout '{name}'; choose from {', '.join(known)}")
    return known[name]


def read(root: Path, layout: str | None = None, strict: bool = False) -> tuple[pd.DataFrame, list[Problem]]:
    """Read a dataset root into (table, problems); `strict` makes any problem fatal. Rows are sorted by path."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset root {root} does not exist")
    name = layout or detect(root)
    module = layout_module(name)
    if layout and not module.detect(root):
        raise DatasetError(f"{root} is not laid out as '{name}': expected {module.DESCRIPTION}")
    table, problems = module.read(root)
    problems = sorted(problems)
    if strict and problems:
        raise DatasetError(f"{len(problems)} problem(s) in {root} (--strict), first: {problems[0][0]}: "
                           f"{problems[0][1]}")
    if table.empty:
        raise DatasetError(f"no audio files found in {root} as layout '{name}'"
                           + (f" ({len(problems)} problem(s), first: {problems[0][1]})" if problems else ""))
    table = table.sort_values("path", kind="stable").reset_index(drop=True)
    table.attrs["layout"] = name
    return table, problems


def add_dataset_arguments(parser) -> None:
    """--layout and --strict, shared by every command that takes a dataset root."""
    parser.add_argument("--layout", choices=list(layouts()), default=None, metavar="NAME",
                        help="dataset layout (default: detected from the files that define it): " + layout_help())
    parser.add_argument("--strict", action="store_true",
                        help="fail when a protocol line has no audio or an audio file has no protocol line "
                             "(default: list them in errors.csv and go on)")


def asv_scores(root: Path, layout: str, split: str) -> AsvScores | None:
    """The organisers' ASV scores for min t-DCF when the layout has them on disk, else None."""
    reader = getattr(layout_module(layout), "asv_scores", None)
    return reader(Path(root), split) if reader else None


def metadata_columns(table: pd.DataFrame) -> list[str]:
    """The corpus-specific columns after TABLE_COLUMNS (codec, language, vocoder, ...)."""
    return [column for column in table.columns if column not in TABLE_COLUMNS]
