"""Split rendered spectrograms by SOURCE FILE into train/val/test (stratified, grouped, seeded).

Example: python scripts/split_data.py --input spectrograms --groups data_clean/groups.csv
"""
import argparse
import sys
from pathlib import Path


from deepfake_detector.data.splits import Info, SplitError, count_table, split_folder


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("spectrograms"),
                        help="spectrogram folder holding manifest.csv (default: spectrograms)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ratios", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--groups", type=Path, default=None,
                        help="CSV with columns path,group (speaker, session...); files of a group share a split")
    parser.add_argument("--copy", action="store_true", help="copy images into the split folders instead of hard links")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        table, warnings = split_folder(args.input, tuple(args.ratios), args.seed, args.groups, args.copy)
    except SplitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in warnings:
        if isinstance(warning, Info):
            print(f"info: {warning}")
        else:
            print(f"warning: {warning}", file=sys.stderr)
    print(count_table(table))
    print(f"wrote {args.input / 'splits.csv'} and {args.input}/{{train,val,test}}/{{real,fake}}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
