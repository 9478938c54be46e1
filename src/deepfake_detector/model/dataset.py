"""The split table and the tf.data pipeline that feeds spectrogram PNGs to a model.

A rendered data folder holds `params.json`, `splits.csv` (one row per PNG: png_path relative to the folder,
class, split, source_path, source_sha256, group, and optionally pair) and the PNGs themselves. Paths and labels always travel
together in one table, so they can never be shuffled apart, and labels come from the class names pinned in
params.py (real = 0, fake = 1), never from the alphabetical order of folder names.

TensorFlow is imported only where a dataset is built, so a command line can check a folder and report a
problem in one line before TensorFlow starts (its import prints log lines to stderr).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from deepfake_detector.data.features import load_png
from deepfake_detector.io_utils import atomic_path
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


# --cache: where decoded pictures live between epochs (see make_dataset).
CACHE_MODES = ("auto", "memory", "disk", "none")
# `auto` keeps decoded pictures in RAM only when they take at most this fraction of the available memory.
MEMORY_CACHE_FRACTION = 0.25


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages; what a new cache could take."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_cache(mode: str, n_images: int, image_shape: tuple[int, int, int],
                 available_bytes: int | None = None) -> str:
    """The cache `mode` stands for: `auto` is `memory` when n_images decoded pictures fit in
    MEMORY_CACHE_FRACTION of the available memory, otherwise `none` (stream: decode every epoch). Streaming beats
    a disk cache here: a picture's PNG is several times smaller than its decoded pixels, and decoding it costs
    less than a training step spends on it."""
    if mode not in CACHE_MODES:
        raise ValueError(f"unknown cache mode '{mode}'; choose one of: {', '.join(CACHE_MODES)}")
    if mode != "auto":
        return mode
    needed = n_images * int(np.prod(image_shape))
    available = available_memory_bytes() if available_bytes is None else available_bytes
    return "memory" if needed <= MEMORY_CACHE_FRACTION * available else "none"


def disk_cache(paths: list[str], image_shape: tuple[int, int, int], cache_dir: Path) -> np.ndarray:
    """All pictures of `paths`, decoded once into a read-only memory-mapped .npy file in `cache_dir`.

    The file name is a hash of the paths, their sizes and modification times, so a changed folder gets a new
    cache; the file is written under a temporary name and renamed when complete.
    """
    key = hashlib.sha256(repr(image_shape).encode())
    for path in paths:
        stat = os.stat(path)
        key.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    cache_path = Path(cache_dir) / f"pictures-{key.hexdigest()[:16]}.npy"
    if not cache_path.is_file():
        with atomic_path(cache_path) as tmp:
            pictures = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), *image_shape))
            for index, path in enumerate(paths):
                pictures[index] = load_png(path)
            pictures.flush()
            del pictures
    return np.load(cache_path, mmap_mode="r")


def make_dataset(split_table: pd.DataFrame, data_dir: Path, batch_size: int, training: bool, seed: int,
                 image_shape: tuple[int, int, int] | None = None, augment: Augment | None = None,
                 cache: str = "memory", shard: tuple[int, int] = (0, 1),
                 cache_dir: Path | None = None) -> tf.data.Dataset:
    """(uint8 images (batch, H, W, 3), float32 labels (batch,)) in table order, or seeded-shuffled for training.

    cache (see choose_cache; `auto` must be resolved by the caller):
    - `memory`: pictures are decoded in a parallel map and kept in RAM after the first pass; training shuffles
      all of them every epoch (memory grows with the split).
    - `none`: training shuffles the file table (indices, 8 bytes a picture) every epoch, seeded, and the map
      decodes each PNG as it is needed; memory stays at a few batches whatever the split's size.
    - `disk`: as `none`, but pictures are read from a memory-mapped file of decoded pixels (disk_cache).
    shard=(index, count): this input pipeline takes every count-th picture (multi-worker training). With
    `memory` the partition is fixed; otherwise the whole split is shuffled first, identically on every worker
    (same seed), then dealt out, so each epoch still covers the split exactly once.
    `augment` runs only when training, after the shuffle, so every epoch sees fresh augmentations.
    """
    import tensorflow as tf

    if split_table.empty:
        raise DataError("cannot build a dataset from an empty split table")
    if cache not in CACHE_MODES or cache == "auto":
        raise ValueError(f"make_dataset needs a resolved cache mode (memory, disk or none), got '{cache}'")
    paths = [str(Path(data_dir) / path) for path in split_table["png_path"]]
    labels = class_labels(split_table["class"]).astype(np.float32)
    index, count = shard
    if cache == "memory":
        dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
        dataset = dataset.shard(count, index) if count > 1 else dataset
        dataset = dataset.map(png_decoder(image_shape), num_parallel_calls=tf.data.AUTOTUNE).cache()
        if training:
            dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    else:
        order = tf.data.Dataset.range(len(paths))
        if training:
            order = order.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        order = order.shard(count, index) if count > 1 else order
        if cache == "disk":
            if image_shape is None:
                raise ValueError("the disk cache needs the picture shape")
            read = _memmap_reader(disk_cache(paths, image_shape, cache_dir or Path(data_dir) / "cache"),
                                  labels, image_shape)
        else:
            read = _indexed_decoder(paths, labels, image_shape)
        dataset = order.map(read, num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _indexed_decoder(paths: list[str], labels: np.ndarray, image_shape):
    import tensorflow as tf

    path_table, label_table, decode = tf.constant(paths), tf.constant(labels), png_decoder(image_shape)

    def read(index):
        return decode(tf.gather(path_table, index), tf.gather(label_table, index))

    return read


def _memmap_reader(pictures: np.ndarray, labels: np.ndarray, image_shape):
    import tensorflow as tf

    label_table = tf.constant(labels)

    def read(index):
        image = tf.numpy_function(lambda row: np.asarray(pictures[row]), [index], tf.uint8, stateful=False)
        return tf.ensure_shape(image, image_shape), tf.gather(label_table, index)

    return read
