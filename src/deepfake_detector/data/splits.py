"""Split SOURCE FILES (never single images) into train/val/test and materialise the split folders.

Files that must stay together form one group: the same path, the same content (sha256) and the same user group
(speaker, session, source utterance; from an optional `path,group` CSV) are merged with a union-find. Groups are
assigned per class with a seeded greedy that fills each split up to its share of files, so every split is
stratified; a group holding both classes moves as one unit. An official split in the manifest is kept as it is.
The manifest's own `group` column (the dataset's speaker) groups files like the groups CSV does. Held-out attacks
(`holdout_attacks`) build the unseen-attack protocol: their files go to test only, grouped by content alone (so
their speakers' other files may sit in train), and the other files are split by the ratios among themselves.
The manifest's attack and metadata columns are copied into splits.csv for per-attack evaluation.
Before anything is written, the result is checked once more: no path, hash or group may appear in two splits.

Pair sets: a corpus manifest with a `source_file` column (the demo corpus' demo_manifest.csv) says which clips
are copy-syntheses of which real clip. The pair id of a clip is its source_file when that is set, else the clip's
own file for a real clip; other fakes have none. Given such a manifest, splits.csv gets an extra `pair` column
(empty when unpaired) that training's pair-aware batches read, and no pair set may cross splits either.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detector.io_utils import atomic_path
from deepfake_detector.params import CLASS_NAMES

SPLIT_NAMES = ("train", "val", "test")

# Folder names datasets use for their official splits (Fake-or-Real: training/validation/testing).
SPLIT_SYNONYMS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "eval": "test",
}

SPLITS_COLUMNS = ["png_path", "class", "split", "source_path", "source_sha256", "group"]
# Optional column: the pair set of a row's source file ('' when unpaired).
PAIR_COLUMN = "pair"
# The corpus manifest that sits beside groups.csv in a demo corpus and names each copy's source clip.
CORPUS_MANIFEST = "demo_manifest.csv"


class SplitError(Exception):
    """The split cannot be made or would leak; str(error) is a one-line reason."""


def canonical_split(folder_name: str) -> str | None:
    """'training' -> 'train', 'validation' -> 'val', ...; None when the name is not a split folder."""
    return SPLIT_SYNONYMS.get(folder_name.strip().lower())


class _UnionFind:
    def __init__(self, items):
        self.parent = {item: item for item in items}

    def find(self, item):
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, first, second):
        first_root, second_root = self.find(first), self.find(second)
        if first_root != second_root:
            # The smaller key becomes the root so the result does not depend on the order of unions.
            low, high = sorted((first_root, second_root))
            self.parent[high] = low


@dataclasses.dataclass
class Group:
    """One unit of assignment: source files that must share a split."""
    name: str
    sources: list[str]
    class_counts: Counter  # files per class
    official_splits: Counter  # files per official split ('' excluded)


def read_groups_csv(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"path", "group"} - set(table.columns)
    if missing:
        raise SplitError(f"groups file {path} lacks column(s) {sorted(missing)}; expected columns path,group")
    return table[(table["path"] != "") & (table["group"] != "")]


def read_pairs_manifest(path: Path) -> pd.DataFrame:
    """A `path,group` table of pair ids from a corpus manifest with columns file, label and source_file."""
    manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"file", "label", "source_file"} - set(manifest.columns)
    if missing:
        raise SplitError(f"pairs manifest {path} lacks column(s) {sorted(missing)}; expected file,label,source_file")
    pair = manifest["source_file"].where(manifest["source_file"] != "",
                                         manifest["file"].where(manifest["label"] == "real", ""))
    table = pd.DataFrame({"path": manifest["file"], "group": pair})
    return table[(table["path"] != "") & (table["group"] != "")]


def default_pairs_manifest(groups_csv: Path | None) -> Path | None:
    """The corpus manifest beside a groups file, when it names copy sources (a demo corpus); else None."""
    if groups_csv is None:
        return None
    candidate = Path(groups_csv).with_name(CORPUS_MANIFEST)
    if not candidate.is_file():
        return None
    header = pd.read_csv(candidate, nrows=0).columns
    return candidate if "source_file" in header else None


def match_group_labels(source_paths: list[str], groups: pd.DataFrame) -> tuple[dict[str, set[str]], int]:
    """Map each source path to its user group labels; also return how many CSV rows matched no source.

    A CSV path matches a source by resolved absolute path, or as a path suffix on folder boundaries
    ('real/a.wav' matches '/data/clean/real/a.wav')."""
    by_resolved = {str(Path(source).resolve()): source for source in source_paths}
    by_suffix: dict[str, list[str]] = defaultdict(list)
    for source in source_paths:
        parts = Path(source).parts
        for start in range(len(parts)):
            by_suffix[Path(*parts[start:]).as_posix()].append(source)
    labels: dict[str, set[str]] = defaultdict(set)
    unmatched = 0
    for path_text, group in zip(groups["path"], groups["group"]):
        candidate = Path(path_text)
        if candidate.is_absolute():
            matches = [by_resolved[str(candidate.resolve())]] if str(candidate.resolve()) in by_resolved else []
        else:
            matches = by_suffix.get(Path(os.path.normpath(path_text)).as_posix(), [])
        unmatched += not matches
        for source in matches:
            labels[source].add(group)
    return labels, unmatched


def build_groups(files: pd.DataFrame, user_labels: dict[str, set[str]]) -> list[Group]:
    """Union-find over source files: same sha256 or same user group label -> same Group."""
    sources = sorted(files["source_path"])
    union = _UnionFind(sources)
    for _, members in files.groupby("source_sha256")["source_path"]:
        _union_all(union, sorted(members))
    sources_by_label: dict[str, list[str]] = defaultdict(list)
    for source, labels in user_labels.items():
        for label in labels:
            sources_by_label[label].append(source)
    for members in sources_by_label.values():
        _union_all(union, sorted(members))

    by_root: dict[str, list[str]] = defaultdict(list)
    for source in sources:
        by_root[union.find(source)].append(source)
    indexed = files.set_index("source_path")
    groups = []
    for members in by_root.values():
        rows = indexed.loc[members]
        labels = sorted(set().union(*(user_labels.get(source, set()) for source in members)))
        name = "+".join(labels) if labels else f"sha:{min(rows['source_sha256'])[:12]}"
        official = Counter(split for split in rows["official_split"] if split)
        groups.append(Group(name, members, Counter(rows["class"]), official))
    return sorted(groups, key=lambda group: group.sources[0])


def _union_all(union: _UnionFind, members: list[str]) -> None:
    for other in members[1:]:
        union.union(members[0], other)


def _official_split(group: Group) -> str | None:
    """The group's official split; a group spread over several takes the one holding most of its files."""
    if not group.official_splits:
        return None
    ranked = sorted(group.official_splits.items(), key=lambda item: (-item[1], SPLIT_NAMES.index(item[0])))
    return ranked[0][0]


def assign_groups(groups: list[Group], ratios: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Group name -> split. Official splits are kept; the rest follow a seeded, per-class greedy."""
    assignment: dict[str, str] = {}
    filled = {split: Counter() for split in SPLIT_NAMES}  # files per class already in each split
    free = []
    for group in groups:
        official = _official_split(group)
        if official is None:
            free.append(group)
        else:
            assignment[group.name] = official
            filled[official].update(group.class_counts)
    if not free:
        return assignment

    totals = Counter()
    for group in groups:
        totals.update(group.class_counts)
    targets = {split: {name: ratio * totals[name] for name in totals} for split, ratio in zip(SPLIT_NAMES, ratios)}

    # Shuffle with the seed, then place big groups first (stable sort keeps the seeded order among equals).
    order = np.random.default_rng(seed).permutation(len(free))
    free = sorted((free[index] for index in order), key=lambda group: -sum(group.class_counts.values()))

    open_splits = [split for split, ratio in zip(SPLIT_NAMES, ratios) if ratio > 0]
    for group in _seed_each_split(free, ratios, assignment, filled):
        # The split that most lacks this group's classes (files still wanted, weighted by the group's files).
        best = max(open_splits, key=lambda split: sum(  # max keeps the first split on ties
            count * (targets[split][name] - filled[split][name]) for name, count in group.class_counts.items()))
        assignment[group.name] = best
        filled[best].update(group.class_counts)
    return assignment


def _seed_each_split(free: list[Group], ratios, assignment: dict, filled: dict) -> list[Group]:
    """Give every split with a non-zero ratio one small single-class group of each class that can spare one.

    Without this a tiny class could land entirely in train. Returns the groups still to place."""
    remaining = list(free)
    wanted_splits = [split for split, ratio in zip(SPLIT_NAMES, ratios) if ratio > 0]
    for name in sorted({name for group in free for name in group.class_counts}):
        single_class = [group for group in remaining if set(group.class_counts) == {name}]
        needy = [split for split in reversed(wanted_splits) if filled[split][name] == 0]
        if len(single_class) < len(needy):
            continue  # too few groups to cover every split; the final check warns
        smallest_first = sorted(single_class, key=lambda group: sum(group.class_counts.values()))
        for split, group in zip(needy, smallest_first):
            assignment[group.name] = split
            filled[split].update(group.class_counts)
            remaining.remove(group)
    return remaining


def check_no_leak(table: pd.DataFrame) -> None:
    """Final invariant: each source path, content hash, group and pair set lies in exactly one split."""
    for column, what in (("source_path", "file"), ("source_sha256", "content hash"), ("group", "group"),
                         (PAIR_COLUMN, "pair set")):
        if column not in table.columns:
            continue
        spread = table[table[column].fillna("") != ""].groupby(column)["split"].nunique()
        leaking = spread[spread > 1]
        if len(leaking):
            raise SplitError(f"{len(leaking)} {what}(s) cross splits, e.g. {leaking.index[0]}; nothing written")


def missing_class_warnings(table: pd.DataFrame, ratios) -> list[str]:
    present = table.groupby("split")["class"].agg(set).to_dict()
    warnings = []
    for split, ratio in zip(SPLIT_NAMES, ratios):
        lacking = [name for name in CLASS_NAMES if ratio > 0 and name not in present.get(split, set())]
        if lacking:
            warnings.append(f"split '{split}' has no {' or '.join(lacking)} file (too few groups)")
    return warnings


def dataset_columns(manifest: pd.DataFrame) -> list[str]:
    """Attack and metadata columns the dataset reader put in the manifest (copied into splits.csv)."""
    from deepfake_detector.data.spectrograms import MANIFEST_COLUMNS

    return [column for column in manifest.columns if column not in MANIFEST_COLUMNS + SPLITS_COLUMNS]


def pair_ids(source_paths: list[str], pairs_table: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    """Source path -> pair id, matched as groups files are; a file with two pair ids is a corpus error."""
    labels, unmatched = match_group_labels(source_paths, pairs_table)
    ambiguous = sorted(source for source, pairs in labels.items() if len(pairs) > 1)
    if ambiguous:
        raise SplitError(f"{len(ambiguous)} file(s) have several pair ids in the pairs manifest, e.g. {ambiguous[0]}")
    warnings = [f"{unmatched} row(s) of the pairs manifest match no rendered source file"] if unmatched else []
    return {source: next(iter(pairs)) for source, pairs in labels.items()}, warnings


def make_splits(manifest: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 42,
                groups_table: pd.DataFrame | None = None,
                holdout_attacks: tuple[str, ...] = (),
                pairs_table: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Manifest rows (one per image) -> (splits table with SPLITS_COLUMNS, `pair` given a pairs table, then the
    dataset's columns; warnings)."""
    _check_ratios(ratios)
    manifest = manifest.assign(official_split=manifest["official_split"].fillna("").map(_known_split))
    held_out = _held_out(manifest, holdout_attacks)
    files = manifest.drop_duplicates("source_path")
    warnings = []
    user_labels: dict[str, set[str]] = defaultdict(set)
    if "group" in files.columns:  # the dataset's speaker; held-out files are grouped by content only
        for source, label, out in zip(files["source_path"], files["group"].fillna("").astype(str),
                                      held_out[files.index]):
            if label and not out:
                user_labels[source].add(label)
    if groups_table is not None:
        csv_labels, unmatched = match_group_labels(sorted(files["source_path"]), groups_table)
        for source, labels in csv_labels.items():
            user_labels[source] |= labels
        if unmatched:
            warnings.append(f"{unmatched} row(s) of the groups file match no rendered source file")
    held_out_files = held_out[files.index].to_numpy()
    files = files[["source_path", "class", "source_sha256", "official_split"]]
    # The other files are split by the ratios among themselves; held-out files (grouped by content) go to test.
    groups = build_groups(files[~held_out_files], user_labels)
    warnings += _conflict_warnings(groups, files)
    assignment = assign_groups(groups, tuple(ratios), seed)
    for group in build_groups(files[held_out_files], {}) if held_out_files.any() else []:
        group.name = f"held-out:{group.name}"
        assignment[group.name] = "test"
        groups.append(group)

    group_of = {source: group.name for group in groups for source in group.sources}
    table = manifest.assign(
        group=manifest["source_path"].map(group_of),
        split=lambda frame: frame["group"].map(assignment),
    )
    # Identical files under the same name render to the same PNG; list each image once.
    table = table.sort_values(["png_path", "source_path"]).drop_duplicates("png_path")
    table = table.sort_values(["split", "class", "source_path", "png_path"], key=_split_order)
    columns = list(SPLITS_COLUMNS)
    if pairs_table is not None:
        pair_of, pair_warnings = pair_ids(sorted(files["source_path"]), pairs_table)
        warnings += pair_warnings
        table = table.assign(**{PAIR_COLUMN: table["source_path"].map(pair_of).fillna("")})
        columns.append(PAIR_COLUMN)
    table = table[columns + dataset_columns(manifest)].reset_index(drop=True)
    check_no_leak(table)  # also catches a held-out file whose content another split holds
    return table, warnings + missing_class_warnings(table, ratios)


def _held_out(manifest: pd.DataFrame, holdout_attacks: tuple[str, ...]) -> pd.Series:
    """Rows of the held-out attacks; an attack the manifest does not name is an error (a typo would silently
    give an ordinary split)."""
    if not holdout_attacks:
        return pd.Series(False, index=manifest.index)
    if "attack" not in manifest.columns:
        raise SplitError("--holdout-attacks needs a manifest with an 'attack' column: render a corpus that names "
                         "its attacks (ASVspoof, WaveFake, MLAAD, or a CSV manifest with an attack column)")
    attacks = manifest["attack"].fillna("").astype(str)
    unknown = sorted(set(holdout_attacks) - set(attacks))
    if unknown:
        raise SplitError(f"held-out attack(s) {unknown} not in the manifest; it names "
                         f"{', '.join(sorted(set(attacks) - {'', '-'})) or 'none'}")
    return attacks.isin(holdout_attacks)


def _known_split(name: str) -> str:
    if not name:
        return ""
    if canonical_split(name) is None:
        raise SplitError(f"manifest official_split '{name}' is not one of {', '.join(SPLIT_SYNONYMS)}")
    return canonical_split(name)


def _split_order(column: pd.Series) -> pd.Series:
    return column.map(SPLIT_NAMES.index) if column.name == "split" else column


def _check_ratios(ratios) -> None:
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise SplitError(f"--ratios must be three non-negative numbers summing to 1, got {list(ratios)}")


class Info(str):
    """A message about a deliberate property of the data: the split CLI prints it as information, not a warning."""


def _conflict_warnings(groups: list[Group], files: pd.DataFrame) -> list[str]:
    warnings = []
    classes_per_content = files.groupby("source_sha256")["class"].nunique()
    mislabelled = classes_per_content[classes_per_content > 1]
    if len(mislabelled):  # the same bytes cannot be both real and fake: a labelling mistake
        example = files.loc[files["source_sha256"] == mislabelled.index[0], "source_path"].iloc[0]
        warnings.append(f"{len(mislabelled)} identical file(s) are labelled both real and fake (e.g. {example}): "
                        "check the labels; each is kept in one split")
    both_classes = [group for group in groups if len(group.class_counts) > 1]
    if both_classes:
        warnings.append(Info(f"{len(both_classes)} group(s) hold both classes (e.g. {both_classes[0].name}), as when "
                             "fakes are made from real recordings (vocoded copies stay with their source); each "
                             "group is kept whole in one split"))
    spread = [group for group in groups if len(group.official_splits) > 1]
    if spread:
        warnings.append(f"{len(spread)} group(s) span several official splits (e.g. {spread[0].name}); "
                        "each was moved whole into the split holding most of its files")
    return warnings


def materialise(table: pd.DataFrame, root: Path, copy: bool = False) -> str:
    """Hard-link (or copy) every image into root/<split>/<class>/, removing images left from earlier runs.

    Returns 'link' or 'copy', the method actually used."""
    method = "copy" if copy else "link"
    for split in SPLIT_NAMES:
        for name in CLASS_NAMES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            wanted = table[(table["split"] == split) & (table["class"] == name)]["png_path"]
            wanted_names = {Path(path).name for path in wanted}
            for stale in folder.iterdir():
                if stale.is_file() and stale.name not in wanted_names:
                    stale.unlink()
            for png_path in wanted:
                method = _place(root / png_path, folder / Path(png_path).name, method)
    return method


def _place(source: Path, target: Path, method: str) -> str:
    if method == "link" and target.exists() and os.path.samefile(source, target):
        return method
    with atomic_path(target) as tmp:
        if method == "link":
            try:
                tmp.unlink()
                os.link(source, tmp)
                return method
            except OSError:  # another file system, or one without hard links
                method = "copy"
        shutil.copyfile(source, tmp)
    return method


def count_table(table: pd.DataFrame) -> str:
    """Files and images per split and class, as a fixed-width text table."""
    lines = [f"{'split':<6} {'class':<5} {'files':>6} {'images':>7}"]
    for split in SPLIT_NAMES:
        for name in CLASS_NAMES:
            rows = table[(table["split"] == split) & (table["class"] == name)]
            lines.append(f"{split:<6} {name:<5} {rows['source_path'].nunique():>6} {len(rows):>7}")
    lines.append(f"{'total':<12} {table['source_path'].nunique():>6} {len(table):>7}")
    return "\n".join(lines)


def split_folder(spectrogram_dir: Path, ratios=(0.8, 0.1, 0.1), seed: int = 42, groups_csv: Path | None = None,
                 copy: bool = False, holdout_attacks: tuple[str, ...] = (),
                 pairs_csv: Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read <dir>/manifest.csv, split it, write <dir>/splits.csv and the split folders. Raises SplitError.

    `pairs_csv` is a corpus manifest naming copy sources (read_pairs_manifest); it adds the `pair` column."""
    _check_ratios(ratios)
    spectrogram_dir = Path(spectrogram_dir)
    manifest_path = spectrogram_dir / "manifest.csv"
    if not manifest_path.is_file():
        raise SplitError(f"{manifest_path} not found; run scripts/generate_spectrograms.py first")
    manifest = pd.read_csv(manifest_path, dtype={"official_split": str, "source_sha256": str, "group": str,
                                                 "attack": str})
    if manifest.empty:
        raise SplitError(f"{manifest_path} lists no images")
    if groups_csv is not None and not Path(groups_csv).is_file():
        raise SplitError(f"groups file {groups_csv} not found")
    groups_table = read_groups_csv(Path(groups_csv)) if groups_csv is not None else None
    if pairs_csv is not None and not Path(pairs_csv).is_file():
        raise SplitError(f"pairs manifest {pairs_csv} not found")
    pairs_table = read_pairs_manifest(Path(pairs_csv)) if pairs_csv is not None else None
    table, warnings = make_splits(manifest, ratios, seed, groups_table, tuple(holdout_attacks), pairs_table)
    with atomic_path(spectrogram_dir / "splits.csv") as tmp:
        table.to_csv(tmp, index=False)
    method = materialise(table, spectrogram_dir, copy)
    if method == "copy" and not copy:
        warnings.append("images were copied because hard links are not supported here")
    return table, warnings
