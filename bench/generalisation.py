"""Generalisation benchmark: leave-one-system-out, cross-dataset and corruption EER per model row.

Rows: each --models entry without and with augmentation, by default baseline, baseline + augmentation,
compact_cmn, compact_cmn + augmentation (see deepfake_detector.report.benchmark for the protocol).
Writes benchmarks/generalisation.md, .png and .json.

    python bench/generalisation.py            # default run (~26 min on 2 cores)
    python bench/generalisation.py --models baseline,compact,compact_cmn   # six rows (~34 min)
    python bench/generalisation.py --quick    # smoke run on a tiny synthetic corpus (~2 min)
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deepfake_detector.data.augment import parse_augment_names  # noqa: E402
from deepfake_detector.report.benchmark import BenchmarkError, BenchmarkSettings, run_benchmark  # noqa: E402
from deepfake_detector.model.models import MODELS  # noqa: E402

DEFAULTS = BenchmarkSettings()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULTS.corpus,
                        help="demo corpus folder with demo_manifest.csv and groups.csv")
    parser.add_argument("--work", type=Path, default=DEFAULTS.work_dir,
                        help="rendered pictures, split tables, trained runs and caches (resumable)")
    parser.add_argument("--out", type=Path, default=DEFAULTS.out_dir, help="where the report files go")
    parser.add_argument("--shared-data", type=Path, default=DEFAULTS.shared_data,
                        help="folder holding the evaluation-only for-norm-mini, tts-mixed and crossdomain sets")
    parser.add_argument("--models", default=",".join(DEFAULTS.models),
                        help="comma-separated registry models; each gives a row without and one with augmentation")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="maximum epochs of the main runs")
    parser.add_argument("--loso-epochs", type=int, default=DEFAULTS.loso_epochs, help="maximum epochs per LOSO run")
    parser.add_argument("--loso-fraction", type=float, default=DEFAULTS.loso_train_fraction,
                        help="seeded share of train files per class used by each LOSO run")
    parser.add_argument("--loso-families", type=int, default=DEFAULTS.loso_families,
                        help="hold out only the first N families (default: all)")
    parser.add_argument("--augment", default="all", help="augmentations of the '+aug' rows (augment.py names)")
    parser.add_argument("--augment-copies", type=int, default=DEFAULTS.augment_copies,
                        help="augmented copies rendered per train file in the '+aug' rows")
    parser.add_argument("--eval-per-class", type=int, default=DEFAULTS.eval_files_per_class,
                        help="seeded cap on files per class in each evaluation set (default: all)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--jobs", type=int, default=DEFAULTS.jobs, help="worker processes for rendering")
    parser.add_argument("--devices", type=int, default=DEFAULTS.devices, help="logical CPU devices for training")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: tiny synthetic corpus, 1 epoch, 1 LOSO family, 6 eval files per class")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(sorted(MODELS))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = BenchmarkSettings(
            corpus=args.corpus, work_dir=args.work, out_dir=args.out, shared_data=args.shared_data,
            models=tuple(args.models.split(",")),
            epochs=args.epochs, loso_epochs=args.loso_epochs, loso_train_fraction=args.loso_fraction,
            loso_families=args.loso_families, augment=parse_augment_names(args.augment),
            augment_copies=args.augment_copies, eval_files_per_class=args.eval_per_class, seed=args.seed,
            jobs=args.jobs, devices=args.devices, batch_size=args.batch_size, quick=args.quick)
        results = run_benchmark(settings)
    except (BenchmarkError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print((Path(args.out) / "generalisation.md").read_text())
    print(f"wrote {args.out}/generalisation.md, .png and .json in {results['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
