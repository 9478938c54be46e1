"""Train a detector on a rendered, split spectrogram folder (see deepfake_detector.model.training).

    python src/train_cnn.py --data spectrograms --model baseline --epochs 10 --devices 2
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from deepfake_detector.data.augment import add_augment_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("spectrograms"),
                        help="folder with params.json, splits.csv and the PNGs")
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
    parser.add_argument("--target-fpr", type=float, default=None,
                        help="choose the threshold for this validation false-positive rate instead of the EER")
    parser.add_argument("--name", default=None, help="output file stem; None means the model name")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes rendering augmented copies")
    add_augment_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from deepfake_detector.data.augment import config_from_args
    from deepfake_detector.model.dataset import DataError, check_trainable, load_split_table

    try:
        augment_config = config_from_args(args, args.seed)
        # Check the folder before TensorFlow is imported: its import prints log lines to stderr.
        check_trainable(load_split_table(args.data))
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from deepfake_detector.model.model_store import ModelError
    from deepfake_detector.model.training import TrainingConfig, format_summary, train

    config = TrainingConfig(data_dir=args.data, epochs=args.epochs, batch_size=args.batch_size,
                            model_name=args.model, seed=args.seed, devices=args.devices, patience=args.patience,
                            monitor=args.monitor,
                            learning_rate=args.learning_rate, name=args.name, models_dir=args.models_dir,
                            plots_dir=args.plots_dir, target_fpr=args.target_fpr, augment=augment_config,
                            jobs=args.jobs)
    try:
        record = train(config)
    except (DataError, ModelError, ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_summary(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
