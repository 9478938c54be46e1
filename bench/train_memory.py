"""Peak memory of one training epoch against the size of the folder: synthetic folders of 10k and 100k pictures.

Each folder holds two rendered PNGs (one per class) hard-linked N times, listed in a splits.csv, so a 100k folder
costs seconds and almost no disk. Every run is a fresh process (peak RSS is per process) that builds the training
input with make_dataset for the given --cache mode and fits one epoch of a small pipeline-bound network (so the
input, not the model, dominates and the epoch is short); it prints its peak RSS (ru_maxrss).

Example: python bench/train_memory.py --sizes 10000 100000 --caches none auto
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepfake_detector.data.features import save_png, waveform_to_images  # noqa: E402
from deepfake_detector.params import Params  # noqa: E402


def make_linked_folder(root: Path, n_pictures: int, params: Params = Params()) -> Path:
    """params.json, splits.csv (all train) and n_pictures hard links to one PNG per class."""
    rng = np.random.default_rng(0)
    seconds = int(params.window_s * params.sample_rate)
    waveforms = {"real": np.sin(2 * np.pi * 220 * np.arange(seconds) / params.sample_rate).astype(np.float32),
                 "fake": (0.3 * rng.standard_normal(seconds)).astype(np.float32)}
    rows = []
    for class_name, waveform in waveforms.items():
        original = root / "images" / f"{class_name}.png"
        save_png(waveform_to_images(waveform, params)[0][0], original)
        folder = root / "images" / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(n_pictures // 2):
            os.link(original, folder / f"{index:06d}.png")
            rows.append({"png_path": f"images/{class_name}/{index:06d}.png", "class": class_name, "split": "train",
                         "source_path": f"{class_name}/{index:06d}.wav", "source_sha256": f"{index:064x}",
                         "group": f"{class_name}{index}"})
    params.save(root / "params.json")
    pd.DataFrame(rows).to_csv(root / "splits.csv", index=False)
    return root


def one_epoch(data_dir: Path, cache: str, batch_size: int) -> dict:
    """Runs in the child process: one epoch over the folder's train split; returns what it measured."""
    import keras
    import tensorflow as tf

    from deepfake_detector.model.dataset import choose_cache, load_split_table, make_dataset

    params = Params.load(data_dir / "params.json")
    table = load_split_table(data_dir)
    resolved = choose_cache(cache, len(table), params.png_shape)
    dataset = make_dataset(table, data_dir, batch_size, training=True, seed=0, image_shape=params.png_shape,
                           cache=resolved)
    inputs = keras.Input(params.png_shape, dtype="uint8")
    hidden = keras.layers.Rescaling(1 / 255)(inputs)
    hidden = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(hidden))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    tf.random.set_seed(0)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return {"pictures": len(table), "cache": cache, "resolved": resolved, "seconds": round(seconds, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--caches", nargs="+", default=["none", "auto"], choices=["none", "auto", "memory", "disk"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--child", nargs=2, metavar=("DATA_DIR", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        print(json.dumps(one_epoch(Path(args.child[0]), args.child[1], args.batch_size)))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="train_memory_") as scratch:
        for size in args.sizes:
            folder = make_linked_folder(Path(scratch) / f"n{size}", size)
            for cache in args.caches:
                child = subprocess.run([sys.executable, __file__, "--child", str(folder), cache,
                                        "--batch-size", str(args.batch_size)],
                                       capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
                if child.returncode != 0:
                    print(f"error: the run on {size} pictures with --cache {cache} failed:\n{child.stderr[-2000:]}",
                          file=sys.stderr)
                    return 1
                results.append(json.loads(child.stdout.strip().splitlines()[-1]))
                print(f"  {results[-1]}", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f}; one epoch, batch {args.batch_size}; peak RSS of each run")
    print(f"{'pictures':>9} {'--cache':>8} {'used':>7} {'seconds':>8} {'peak RSS MB':>12} {'vs smallest':>12}")
    smallest = {}
    for result in results:
        base = smallest.setdefault(result["cache"], result["peak_rss_mb"])
        print(f"{result['pictures']:>9} {result['cache']:>8} {result['resolved']:>7} {result['seconds']:>8} "
              f"{result['peak_rss_mb']:>12.0f} {result['peak_rss_mb'] / base:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
