"""Training on pair sets: batches that hold a real clip with its copy-syntheses, and an optional pair loss.

A pair set is a real clip and every vocoded / copy-synthesised version of it (splits.csv column `pair`, from the
corpus manifest's source_file). The copies share speaker, words, room and channel with their source, so seeing
them side by side leaves the vocoder's trace as the difference to learn (Wang & Yamagishi, ICASSP 2023).

Sampler (`make_pair_dataset`): every epoch the pair sets are shuffled (seeded) and packed first-fit into bins of
`per_replica_batch` pictures, one replica's share of a global batch; unpaired pictures fill the gaps and then
make bins of their own, and the bins are shuffled. Every full bin holds whole pair sets; the few bins left short
(too few unpaired pictures to fill them) come last in the epoch, and only there, or for a pair set larger than
a bin, can a set straddle two shares. MirroredStrategy cuts a global batch into consecutive per-replica shares, so
the layout holds on every replica. The order of each epoch is fixed up front, hence `steps_per_epoch`.

Pair loss (`--pair-loss contrastive`, in pair_loss.py, which imports Keras): a supervised contrastive loss
(Khosla et al., NeurIPS 2020) on the L2-normalised embedding the classifier's last layer reads, computed over
each replica's batch and added to the binary cross-entropy with weight `pair_weight`. Pictures of the same class attract, the two classes repel; as
the batches hold pair sets, a real clip's hardest negatives are its own vocoded copies. Wang & Yamagishi add
a contrastive feature loss over each (real, vocoded) pair to the same end; we do not claim to reproduce their
exact formulation (their model is an SSL front end with augmented views). No simpler "consistency" term is
implemented. The library and `train_cnn.py` leave the pair loss off; `make demo` turns it on, because it lowered
the mean held-out-family EER in the benchmark (docs/benchmarks.md, 2026-12-03).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from deepfake_detector.model.dataset import PAIR_COLUMN, Augment, DataError, class_labels, png_decoder

if TYPE_CHECKING:
    import tensorflow as tf

# "none" = binary cross-entropy alone; "contrastive" = pair_loss.supervised_contrastive_loss added to it.
PAIR_LOSSES = ("none", "contrastive")


def pair_units(table: pd.DataFrame) -> list[np.ndarray]:
    """Positions (0..len-1) of the table's rows grouped into units: all rows of one pair set, or one row when
    unpaired. Units are listed in table order."""
    if PAIR_COLUMN not in table.columns:
        raise DataError("splits.csv has no 'pair' column: split with --groups beside a corpus manifest that names "
                        "copy sources (demo_manifest.csv) or --pairs MANIFEST to train on pair sets")
    pair = table[PAIR_COLUMN].fillna("").to_numpy(dtype=str)
    keys = np.where(pair != "", np.char.add("pair:", pair), np.char.add("row:", np.arange(len(table)).astype(str)))
    positions: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        positions.setdefault(key, []).append(position)
    return [np.asarray(rows, dtype=np.int64) for rows in positions.values()]


def pack_units(units: list[np.ndarray], capacity: int, rng: np.random.Generator) -> np.ndarray:
    """One epoch's row order, in bins of `capacity` rows that hold whole pair sets (see the module docstring).

    Pair sets, in seeded random order, go first-fit into bins; the gaps are filled with unpaired rows; the rest
    of the unpaired rows make bins of their own. The full bins come in random order, then the few bins that
    stayed short (too few unpaired rows to fill them, the last unpaired bin), so every bin boundary before them
    falls on a multiple of `capacity`. A pair set larger than a bin fills whole bins and leaves the remainder.
    """
    shuffled = [units[index] for index in rng.permutation(len(units))]
    singles = [unit for unit in shuffled if len(unit) == 1]
    bins: list[list[np.ndarray]] = []
    space: list[int] = []  # free rows per bin
    for unit in (unit for unit in shuffled if len(unit) > 1):
        while len(unit) >= capacity:
            bins.append([unit[:capacity]])
            space.append(0)
            unit = unit[capacity:]
        if len(unit) == 0:
            continue
        target = next((index for index, free in enumerate(space) if free >= len(unit)), None)
        if target is None:
            bins.append([])
            space.append(capacity)
            target = len(bins) - 1
        bins[target].append(unit)
        space[target] -= len(unit)
    for index, free in enumerate(space):
        taken, singles = singles[:free], singles[free:]
        bins[index] += taken
        space[index] -= len(taken)
    for start in range(0, len(singles), capacity):
        bins.append(singles[start:start + capacity])
        space.append(capacity - len(bins[-1]))
    full = [bins[index] for index in rng.permutation(len(bins)) if space[index] == 0]
    short = [rows for rows, free in zip(bins, space) if free > 0]
    order = [unit for rows in full + short for unit in rows]
    return np.concatenate(order) if order else np.zeros(0, np.int64)


def make_pair_dataset(split_table: pd.DataFrame, data_dir: Path, per_replica_batch: int, replicas: int,
                      epochs: int, seed: int, image_shape: tuple[int, int, int] | None = None,
                      augment: Augment | None = None) -> tuple[tf.data.Dataset, int]:
    """Training batches of whole pair sets per replica for `epochs` epochs, and the steps per epoch.

    Pictures are decoded from disk each epoch (no cache: the order changes every epoch and tf.data cannot
    look a cached picture up by index)."""
    import tensorflow as tf

    if split_table.empty:
        raise DataError("cannot build a dataset from an empty split table")
    units = pair_units(split_table)
    rng = np.random.default_rng(seed)
    orders = np.stack([pack_units(units, per_replica_batch, rng) for _ in range(epochs)])  # (epochs, rows)
    paths = tf.constant([str(Path(data_dir) / path) for path in split_table["png_path"]])
    labels = tf.constant(class_labels(split_table["class"]).astype(np.float32))
    decode = png_decoder(image_shape)
    global_batch = per_replica_batch * replicas

    def one_epoch(order: tf.Tensor) -> tf.data.Dataset:
        rows = tf.data.Dataset.from_tensor_slices(order).map(
            lambda row: decode(tf.gather(paths, row), tf.gather(labels, row)), num_parallel_calls=tf.data.AUTOTUNE)
        if augment is not None:
            rows = rows.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        return rows.batch(global_batch)  # batches restart at every epoch

    dataset = tf.data.Dataset.from_tensor_slices(orders).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)
    return dataset, math.ceil(len(split_table) / global_batch)
