"""Training throughput: pictures per second for the compact and the reference (baseline) model on 1 and 2 logical
CPU devices, fed by the training input pipeline (make_dataset: PNG decoding, cache, seeded shuffle) and by the same
pictures already decoded in memory; the input overhead is how much longer a picture takes through the pipeline.

Every device count runs in a fresh process (logical devices are fixed when TensorFlow starts). Rates are over the
epochs after the first (which traces the graph and fills the cache). Other load on the machine slows every row;
compare rows of one run, not across runs.

Example: python bench/train_speed.py --models compact baseline --devices 1 2 --pictures 256 --epochs 3
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(data_dir: Path, model_name: str, devices: int, epochs: int, batch_size: int, cache: str) -> list[dict]:
    """Child process: both feeds for one model on `devices` logical CPUs."""
    import numpy as np
    import tensorflow as tf

    from deepfake_detector.data.features import load_png
    from deepfake_detector.model.dataset import load_split_table, make_dataset
    from deepfake_detector.model.training import EpochTimer, compile_model, make_strategy, throughput
    from deepfake_detector.params import Params

    strategy = make_strategy(devices, "mirrored")
    params = Params.load(data_dir / "params.json")
    table = load_split_table(data_dir)
    global_batch = batch_size * strategy.num_replicas_in_sync
    pictures = np.stack([load_png(data_dir / path) for path in table["png_path"]])
    labels = table["label"].to_numpy(dtype=np.float32)
    feeds = {
        "pipeline": make_dataset(table, data_dir, global_batch, training=True, seed=0, image_shape=params.png_shape,
                                 cache=cache),
        "in-memory": tf.data.Dataset.from_tensor_slices((pictures, labels)).batch(global_batch)
        .prefetch(tf.data.AUTOTUNE),
    }
    rows = []
    for feed, dataset in feeds.items():
        tf.keras.utils.set_random_seed(0)
        with strategy.scope():
            model = compile_model(model_name, params, 1e-3)
        timer = EpochTimer()
        model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
        rate = throughput(len(table), timer.train_seconds)
        rows.append({"model": model_name, "devices": devices, "feed": feed,
                     "images_per_second": rate.get("steady_images_per_second", rate["images_per_second"])})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["compact", "baseline"])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pictures", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement; the first is not counted")
    parser.add_argument("--batch-size", type=int, default=32, help="per replica")
    parser.add_argument("--cache", default="memory", choices=["memory", "none", "disk"],
                        help="the pipeline's cache mode")
    parser.add_argument("--child", nargs=3, metavar=("DATA_DIR", "MODEL", "DEVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        rows = measure(Path(args.child[0]), args.child[1], int(args.child[2]), args.epochs, args.batch_size,
                       args.cache)
        print(json.dumps(rows))
        return 0
    if args.epochs < 2:
        print("error: --epochs must be at least 2 (the first epoch is not timed)", file=sys.stderr)
        return 1
    from train_memory import make_linked_folder

    rows = []
    with tempfile.TemporaryDirectory(prefix="train_speed_") as scratch:
        folder = make_linked_folder(Path(scratch), args.pictures)
        for model_name in args.models:
            for devices in args.devices:
                child = subprocess.run(
                    [sys.executable, __file__, "--child", str(folder), model_name, str(devices), "--epochs",
                     str(args.epochs), "--batch-size", str(args.batch_size), "--cache", args.cache],
                    capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
                if child.returncode != 0:
                    print(f"error: {model_name} on {devices} device(s) failed:\n{child.stderr[-2000:]}",
                          file=sys.stderr)
                    return 1
                rows += json.loads(child.stdout.strip().splitlines()[-1])
                print(f"  {rows[-2:]}", flush=True)
    print(f"\n{args.pictures} pictures, batch {args.batch_size} per replica, pipeline cache '{args.cache}', "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':<10} {'devices':>7} {'pipeline img/s':>15} {'in-memory img/s':>16} {'input overhead':>15}")
    for index in range(0, len(rows), 2):
        pipeline, memory = rows[index]["images_per_second"], rows[index + 1]["images_per_second"]
        print(f"{rows[index]['model']:<10} {rows[index]['devices']:>7} {pipeline:>15.1f} {memory:>16.1f} "
              f"{100 * (memory / pipeline - 1):>14.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
