"""Run as a script: lay out pair-set batches for MirroredStrategy on 2 logical CPU devices and report what each
replica received. Logical devices can only be configured before TensorFlow initialises, hence a fresh process.

Usage: pair_batches_script.py DATA_DIR. Prints one JSON line {"replicas": 2, "steps": n,
"batches": [[rows of replica 0], [rows of replica 1]] per step}, each picture identified by its splits.csv row.
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from deepfake_detector.model import pairs, training  # noqa: E402
from deepfake_detector.model.dataset import load_split_table  # noqa: E402


def main(data_dir: Path) -> None:
    strategy = training.make_strategy(devices=2)
    table = load_split_table(data_dir).reset_index(drop=True)
    dataset, steps = pairs.make_pair_dataset(table, data_dir, per_replica_batch=4, replicas=2, epochs=1, seed=3)
    # Each picture's first pixel row is unique per picture; map it back to the table row.
    from deepfake_detector.data.features import load_png

    keys = {load_png(data_dir / path)[0].tobytes(): row for row, path in enumerate(table["png_path"])}
    batches = []
    for batch in strategy.experimental_distribute_dataset(dataset):
        images = strategy.experimental_local_results(batch[0])
        batches.append([[keys[np.asarray(image)[0].tobytes()] for image in replica] for replica in images])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "steps": steps, "batches": batches}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
