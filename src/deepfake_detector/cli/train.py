"""Train a detector on a rendered, split spectrogram folder (see deepfake_detector.model.training).

    python src/train_cnn.py --data spectrograms --model baseline --epochs 10 --devices 2
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \
        python src/train_cnn.py --data spectrograms   # on every machine, each with its own index
    python src/train_cnn.py --data /data/ASVspoof2019 --spectrograms spectrograms/la19   # a dataset root

A dataset root (class folders, a manifest .csv, ASVspoof, In-the-Wild, ...) is rendered into --spectrograms and
split first (official splits kept, else grouped by speaker); a rerun reuses both.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from deepfake_detector.data.augment import add_augment_arguments
    from deepfake_detector.datasets import add_dataset_arguments
    from deepfake_detector.model.pairs import PAIR_LOSSES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("spectrograms"),
                        help="folder with params.json, splits.csv and the PNGs, or a dataset root")
    parser.add_argument("--spectrograms", type=Path, default=Path("spectrograms"),
                        help="where a dataset root given as --data is rendered and split")
    parser.add_argument("--epochs", type=int, default=10, help="maximum epochs (early stopping may end sooner)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per replica per step")
    parser.add_argument("--model", default="baseline", help="architecture from deepfake_detector.model.models.MODELS")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--devices", type=int, default=1,
                        help="logical CPU devices for MirroredStrategy on a CPU-only machine (GPUs: all are used)")
    parser.add_argument("--patience", type=int, default=3, help="epochs without improvement of --monitor")
    parser.add_argument("--monitor", choices=["val_auc", "val_loss"], default="val_auc",
                        help="validation metric for early stopping and the epoch whose weights are kept")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=None, metavar="MOMENTUM",
                        help="validate, early-stop and save an exponential moving average of the weights with this "
                             "momentum (e.g. 0.99, about the last 100 steps) instead of the last step's weights")
    parser.add_argument("--target-fpr", type=float, default=None,
                        help="choose the threshold for this validation false-positive rate instead of the EER")
    parser.add_argument("--name", default=None, help="output file stem; None means the model name")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes rendering augmented copies")
    parser.add_argument("--strategy", choices=["auto", "mirrored", "multiworker", "default"], default="auto",
                        help="tf.distribute strategy: auto = multiworker when TF_CONFIG is set, else mirrored "
                             "(one machine); multiworker = MultiWorkerMirroredStrategy from TF_CONFIG; default = "
                             "one device")
    parser.add_argument("--cache", choices=["auto", "memory", "disk", "none"], default="auto",
                        help="decoded pictures: memory (RAM), disk (a memory-mapped file under DATA/cache), none "
                             "(decode every epoch); auto = memory when they fit in a quarter of the available "
                             "memory, else none")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="GPU only: float16 compute with float32 weights (Keras mixed_float16 policy)")
    parser.add_argument("--pair-batches", action="store_true",
                        help="batches hold whole pair sets (a real clip with its copy-syntheses; splits.csv column "
                             "'pair'); on by itself with --pair-loss")
    parser.add_argument("--pair-loss", choices=PAIR_LOSSES, default="none",
                        help="extra loss over pair-set batches: 'contrastive' is a supervised contrastive loss on "
                             "the embedding (see deepfake_detector/model/pairs.py)")
    parser.add_argument("--pair-weight", type=float, default=0.5, help="weight of the pair loss beside the BCE")
    add_augment_arguments(parser)
    add_dataset_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from deepfake_detector.data.augment import config_from_args
    from deepfake_detector.model.dataset import DataError, check_trainable, load_split_table

    from deepfake_detector.data.spectrograms import SpectrogramError
    from deepfake_detector.data.splits import SplitError

    try:
        augment_config = config_from_args(args, args.seed)
        args.data = prepared_folder(args)
        # Check the folder before TensorFlow is imported: its import prints log lines to stderr.
        table = load_split_table(args.data)
        check_trainable(table)
        if (args.pair_batches or args.pair_loss != "none") and "pair" not in table.columns:
            raise DataError(f"{args.data / 'splits.csv'} has no 'pair' column: split with --groups beside the "
                            "corpus' demo_manifest.csv (or --pairs MANIFEST) to train on pair sets")
    except (DataError, ValueError, SpectrogramError, SplitError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from deepfake_detector.model.model_store import ModelError
    from deepfake_detector.model.training import TrainingConfig, format_summary, train

    config = TrainingConfig(data_dir=args.data, epochs=args.epochs, batch_size=args.batch_size,
                            model_name=args.model, seed=args.seed, devices=args.devices, patience=args.patience,
                            monitor=args.monitor,
                            learning_rate=args.learning_rate, name=args.name, models_dir=args.models_dir,
                            plots_dir=args.plots_dir, target_fpr=args.target_fpr, augment=augment_config,
                            jobs=args.jobs, strategy=args.strategy, cache=args.cache,
                            mixed_precision=args.mixed_precision, pair_batches=args.pair_batches,
                            pair_loss=args.pair_loss, pair_weight=args.pair_weight,
                            ema_momentum=args.ema)
    try:
        record = train(config)
    except (DataError, ModelError, ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_summary(record))
    return 0


def prepared_folder(args: argparse.Namespace) -> Path:
    """`--data` itself when it is a rendered folder; else render and split the dataset root into --spectrograms
    (a rerun reuses the images and an existing split)."""
    if (args.data / "params.json").is_file():
        return args.data
    from deepfake_detector.cli.split import spectrogram_folder
    from deepfake_detector.data.spectrograms import SpectrogramError
    from deepfake_detector.data.splits import count_table, split_folder

    try:
        folder = spectrogram_folder(args.data, args.spectrograms, args.layout, args.strict)
    except SpectrogramError as error:
        raise SpectrogramError(f"{args.data} is not a rendered spectrogram folder (no params.json) and cannot be "
                               f"rendered as a dataset root: {error}") from error
    if not (folder / "splits.csv").is_file():
        table, warnings = split_folder(folder, seed=args.seed)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(count_table(table))
    return folder


if __name__ == "__main__":
    sys.exit(main())
