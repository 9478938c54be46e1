"""The split table and the tf.data pipeline that feeds spectrogram PNGs to a model.

A rendered data folder holds `params.json`, `splits.csv` (one row per PNG: png_path relative to the folder,
class, split, source_path, source_sha256, group, and optionally pair) and the PNGs themselves. Paths and labels always travel
together in one table, so they can never be shuffled apart, and labels come from the class names pinned in
params.py (real = 0, fake = 1), never from the alphabetical order of folder names.

TensorFlow is imported only where a dataset is built, so a command line can check a folder and report a
problem in one line before TensorFlow starts (its import prints log lines to stderr).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from deepfake_detector.data.features import load_png
from deepfake_detector.data.splits import PAIR_COLUMN  # optional column: a row's pair set, '' when unpaired
from deepfake_detector.params import CLASS_NAMES, Params

if TYPE_CHECKING:
    import tensorflow as tf

SPLIT_COLUMNS = ("png_path", "class", "split", "source_path", "source_sha256", "group")

SPLIT_NAMES = ("train", "val", "test")

# An augmentation takes one (image uint8 (H, W, 3), label float32) pair and returns a pair of the same kind.
Augment = Callable[["tf.Tensor", "tf.Tensor"], tuple["tf.Tensor", "tf.Tensor"]]


class DataError(ValueError):
    """A spectrogram folder or split table cannot be used; str(error) says why in one line."""


def load_data_params(data_dir: Path) -> Params:
    """The Params the spectrograms in `data_dir` were rendered with."""
    params_path = Path(data_dir) / "params.json"
    if not params_path.is_file():
        raise DataError(f"{params_path} is missing: render the folder with scripts/generate_spectrograms.py")
    return Params.load(params_path)


def class_labels(classes: pd.Series) -> np.ndarray:
    """'real'/'fake' -> 0/1 by the pinned class order (fake = 1 = positive class)."""
    return classes.map({name: index for index, name in enumerate(CLASS_NAMES)}).to_numpy(dtype=np.int64)


def _check_table(table: pd.DataFrame, csv_path: Path) -> None:
    missing_columns = [column for column in SPLIT_COLUMNS if column not in table.columns]
    if missing_columns:
        raise DataError(f"{csv_path} lacks column(s) {missing_columns}")
    unknown_classes = sorted(set(table["class"]) - set(CLASS_NAMES))
    if unknown_classes:
        raise DataError(f"{csv_path} has unknown class(es) {unknown_classes}; expected {list(CLASS_NAMES)}")
    unknown_splits = sorted(set(table["split"]) - set(SPLIT_NAMES))
    if unknown_splits:
        raise DataError(f"{csv_path} has unknown split(s) {unknown_splits}; expected {list(SPLIT_NAMES)}")


def _check_files(table: pd.DataFrame, data_dir: Path, params: Params) -> None:
    missing = [path for path in table["png_path"] if not (data_dir / path).is_file()]
    if missing:
        raise DataError(f"{len(missing)} PNG(s) listed in splits.csv are missing, e.g. {data_dir / missing[0]}")
    # One picture is enough to catch a folder rendered with other parameters than its params.json says.
    first_shape = load_png(data_dir / table["png_path"].iloc[0]).shape
    if tuple(first_shape) != tuple(params.png_shape):
        raise DataError(f"{data_dir / table['png_path'].iloc[0]} is {first_shape}, params.json expects "
                        f"{params.png_shape}")


def load_split_table(data_dir: Path, csv_path: Path | None = None) -> pd.DataFrame:
    """Read `<data_dir>/splits.csv` (or another split table whose png paths are relative to `data_dir`), check it
    against the folder, and add an integer `label` column."""
    data_dir = Path(data_dir)
    params = load_data_params(data_dir)
    csv_path = data_dir / "splits.csv" if csv_path is None else Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path} is missing: split the folder with scripts/split_data.py first")
    table = pd.read_csv(csv_path, dtype={"source_sha256": str, "group": str, PAIR_COLUMN: str})
    if PAIR_COLUMN in table.columns:
        table[PAIR_COLUMN] = table[PAIR_COLUMN].fillna("")  # '' = unpaired
    if table.empty:
        raise DataError(f"{csv_path} lists no images")
    _check_table(table, csv_path)
    _check_files(table, data_dir, params)
    return table.assign(label=class_labels(table["class"]))


def data_summary(table: pd.DataFrame) -> dict:
    """{split: {class: {"files": n, "images": n}}}: files are distinct source files, images are PNG windows."""
    return {split: {name: {"files": int(part.loc[part["class"] == name, "source_path"].nunique()),
                           "images": int((part["class"] == name).sum())} for name in CLASS_NAMES}
            for split, part in table.groupby("split", sort=False)}


def check_trainable(table: pd.DataFrame) -> None:
    """Training needs both classes in train and in validation (threshold and calibration come from val)."""
    summary = data_summary(table)
    if "test" not in summary:
        raise DataError("splits.csv has no 'test' rows: training scores the test split once at the end")
    for split in ("train", "val"):
        empty = [name for name in CLASS_NAMES if summary.get(split, {}).get(name, {}).get("files", 0) == 0]
        if empty:
            raise DataError(f"the {split} split has no {' or '.join(empty)} files; it needs both classes")


def png_decoder(image_shape: tuple[int, int, int] | None):
    import tensorflow as tf

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)  # (H, W, 3) uint8
        if image_shape is not None:
            # A static shape lets Keras check the model input; a wrong-sized PNG fails here, by name.
            image = tf.ensure_shape(image, image_shape)
        return image, label

    return decode


def make_dataset(split_table: pd.DataFrame, data_dir: Path, batch_size: int, training: bool, seed: int,
                 image_shape: tuple[int, int, int] | None = None,
                 augment: Augment | None = None) -> tf.data.Dataset:
    """(uint8 images (batch, H, W, 3), float32 labels (batch,)) in table order, or seeded-shuffled for training.

    Decoded pictures are cached after the first pass. `augment` runs only when training, after the shuffle, so
    every epoch sees fresh augmentations of the cached pictures.
    """
    import tensorflow as tf

    if split_table.empty:
        raise DataError("cannot build a dataset from an empty split table")
    paths = [str(Path(data_dir) / path) for path in split_table["png_path"]]
    labels = class_labels(split_table["class"]).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    dataset = dataset.map(png_decoder(image_shape), num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        if augment is not None:
            dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
