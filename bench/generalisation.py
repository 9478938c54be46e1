"""Generalisation benchmark: leave-one-family-out, cross-dataset and corruption EER per recipe, mean +- sd over seeds.

Rows: every corpus (--corpus NAME=PATH, repeated) x model (--models) x augmentation (--augment-rows) x front
end (--scales mel,linear) x pair loss (--pair-losses none,contrastive) x training fakes (--fakes all,copies);
each row trains a main run, one run per held-out family and one per held-out real source (--source-folds) for
every seed (--seeds). The recommended row is the one with the lowest mean held-out-family EER; for-norm-mini,
tts-mixed and crossdomain are evaluation only. See deepfake_detector.report.benchmark for the protocol. Writes
<out>/generalisation.md, .png and .json; finished runs are reused when run again.

    python bench/generalisation.py --corpus v1=data_clean --corpus v2=data_v2            # 3 seeds, all rows
    python bench/generalisation.py --corpus v1=data_clean --quick   # 1 seed, 1 epoch, 1 held-out family
    python bench/generalisation.py --quick    # CI smoke run on a tiny synthetic corpus
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deepfake_detector.data.augment import parse_augment_names  # noqa: E402
from deepfake_detector.report.benchmark import (  # noqa: E402
    FAKE_SETS, MIN_SOURCE_FILES, BenchmarkError, BenchmarkSettings, run_benchmark)
from deepfake_detector.model.models import MODELS  # noqa: E402
from deepfake_detector.model.pairs import PAIR_LOSSES  # noqa: E402
from deepfake_detector.params import SCALES  # noqa: E402

DEFAULTS = BenchmarkSettings()


def corpus_argument(text: str) -> tuple[str, Path]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got '{text}'")
    return name, Path(path)


def names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", type=corpus_argument, action="append", default=[], metavar="NAME=PATH",
                        help="corpus folder with demo_manifest.csv and groups.csv, named for the table; repeat for "
                             "v1 vs v2 (default: demo=data_clean, or a tiny synthetic corpus with --quick)")
    parser.add_argument("--work", type=Path, default=DEFAULTS.work_dir,
                        help="rendered pictures, split tables, trained runs and caches (resumable)")
    parser.add_argument("--out", type=Path, default=DEFAULTS.out_dir, help="where the report files go")
    parser.add_argument("--shared-data", type=Path, default=DEFAULTS.shared_data,
                        help="folder holding the evaluation-only for-norm-mini, tts-mixed and crossdomain sets")
    parser.add_argument("--models", type=names, default=DEFAULTS.models, help="comma-separated registry models")
    parser.add_argument("--augment-rows", type=names, default=("off", "on"),
                        help="rows without (off) and/or with (on) augmentation")
    parser.add_argument("--scales", type=names, default=DEFAULTS.scales, help=f"front ends, of {', '.join(SCALES)}")
    parser.add_argument("--fmax", type=float, default=DEFAULTS.fmax,
                        help="top of every front end's band in Hz (default: Nyquist, 11025)")
    parser.add_argument("--ema", type=float, default=DEFAULTS.ema, metavar="MOMENTUM",
                        help="train every run with a moving average of the weights (train_cnn.py --ema)")
    parser.add_argument("--pair-losses", type=names, default=DEFAULTS.pair_losses,
                        help=f"pair losses, of {', '.join(PAIR_LOSSES)}")
    parser.add_argument("--fakes", type=names, default=DEFAULTS.fake_sets,
                        help="training fakes per row: all, and/or copies (only the copy-syntheses of real clips; "
                             f"test sets unchanged), of {', '.join(FAKE_SETS)}")
    parser.add_argument("--seeds", type=names, default=tuple(map(str, DEFAULTS.seeds)),
                        help="comma-separated seeds; each row is reported as mean +- sd over them")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="maximum epochs of the main runs")
    parser.add_argument("--loso-epochs", type=int, default=DEFAULTS.loso_epochs,
                        help="maximum epochs per held-out-family run")
    parser.add_argument("--loso-fraction", type=float, default=DEFAULTS.loso_train_fraction,
                        help="seeded share of train files per class used by each held-out-family run")
    parser.add_argument("--loso-families", type=int, default=DEFAULTS.loso_families,
                        help="hold out only the first N families present (default: all)")
    parser.add_argument("--source-folds", type=int, default=DEFAULTS.source_folds,
                        help="hold out only the first N real sources, by name (default: all with at least "
                             f"{MIN_SOURCE_FILES} real files; 0: none)")
    parser.add_argument("--augment", default="all", help="augmentations of the '+aug' rows (augment.py names)")
    parser.add_argument("--augment-copies", type=int, default=DEFAULTS.augment_copies,
                        help="augmented copies rendered per train file in the '+aug' rows")
    parser.add_argument("--eval-per-class", type=int, default=DEFAULTS.eval_files_per_class,
                        help="seeded cap on files per class in each evaluation set (default: all)")
    parser.add_argument("--jobs", type=int, default=DEFAULTS.jobs, help="worker processes for rendering")
    parser.add_argument("--devices", type=int, default=DEFAULTS.devices, help="logical CPU devices for training")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: 1 epoch, the first seed, 1 held-out family, 6 eval files per class; "
                             "without --corpus on a tiny synthetic corpus")
    args = parser.parse_args(argv)
    for option, given, known in (("--models", args.models, MODELS), ("--scales", args.scales, SCALES),
                                 ("--pair-losses", args.pair_losses, PAIR_LOSSES),
                                 ("--fakes", args.fakes, FAKE_SETS),
                                 ("--augment-rows", args.augment_rows, ("off", "on"))):
        unknown = sorted(set(given) - set(known))
        if unknown or not given:
            parser.error(f"{option}: unknown or no value(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    try:
        args.seeds = tuple(int(seed) for seed in args.seeds)
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {','.join(args.seeds)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = BenchmarkSettings(
            corpora=tuple(args.corpus), work_dir=args.work, out_dir=args.out, shared_data=args.shared_data,
            models=args.models, augment_rows=tuple(row == "on" for row in args.augment_rows), scales=args.scales,
            fmax=args.fmax, ema=args.ema,
            pair_losses=args.pair_losses, fake_sets=args.fakes, seeds=args.seeds,
            epochs=args.epochs, loso_epochs=args.loso_epochs, loso_train_fraction=args.loso_fraction,
            loso_families=args.loso_families, source_folds=args.source_folds, augment=parse_augment_names(args.augment),
            augment_copies=args.augment_copies, eval_files_per_class=args.eval_per_class,
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
