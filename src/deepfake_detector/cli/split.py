"""Split rendered spectrograms by SOURCE FILE into train/val/test (stratified, grouped, seeded).

Example: python scripts/split_data.py --input spectrograms --groups data_clean/groups.csv
         python scripts/split_data.py --input /data/ASVspoof2019 --spectrograms spectrograms/la19 \
             --holdout-attacks A05,A06      # renders the corpus first, then splits it

Official splits of the dataset are kept; otherwise files are grouped by the dataset's speaker (and --groups).
"""
import argparse
import sys
from pathlib import Path


from deepfake_detector.data.spectrograms import SpectrogramError
from deepfake_detector.data.splits import Info, SplitError, count_table, default_pairs_manifest, split_folder
from deepfake_detector.datasets import add_dataset_arguments


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("spectrograms"),
                        help="spectrogram folder holding manifest.csv, or a dataset root to render into "
                             "--spectrograms first (default: spectrograms)")
    parser.add_argument("--spectrograms", type=Path, default=Path("spectrograms"),
                        help="where a dataset root given as --input is rendered (default: spectrograms)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ratios", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--groups", type=Path, default=None,
                        help="CSV with columns path,group (speaker, session...); files of a group share a split")
    parser.add_argument("--pairs", default="auto",
                        help="corpus manifest (file,label,source_file) naming each copy-synthesis' real source; adds a "
                             "`pair` column for pair-aware training batches. 'auto': the demo_manifest.csv beside "
                             "--groups when it has source_file; 'none': no pairs")
    parser.add_argument("--copy", action="store_true", help="copy images into the split folders instead of hard links")
    parser.add_argument("--holdout-attacks", type=attack_list, default=(), metavar="A,B",
                        help="unseen-attack protocol: files of these attacks (system ids) go to test only")
    add_dataset_arguments(parser)
    return parser.parse_args(argv)


def attack_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def spectrogram_folder(path: Path, output: Path, layout, strict: bool) -> Path:
    """`path` when it is a rendered folder; a dataset root is rendered into `output` (resumable) first."""
    if (path / "manifest.csv").is_file():
        return path
    from deepfake_detector.cli.render import render_root

    render_root(path, output, layout, strict)
    return output


def main(argv=None) -> int:
    args = parse_args(argv)
    pairs = {"auto": default_pairs_manifest(args.groups), "none": None}.get(args.pairs, args.pairs)
    try:
        folder = spectrogram_folder(args.input, args.spectrograms, args.layout, args.strict)
        table, warnings = split_folder(folder, tuple(args.ratios), args.seed, args.groups, args.copy,
                                       args.holdout_attacks, pairs_csv=None if pairs is None else Path(pairs))
    except (SplitError, SpectrogramError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in warnings:
        if isinstance(warning, Info):
            print(f"info: {warning}")
        else:
            print(f"warning: {warning}", file=sys.stderr)
    print(count_table(table))
    if pairs is not None:
        paired = table[table["pair"] != ""]
        print(f"pair ids from {pairs}: {paired['pair'].nunique()} pair sets over {paired['source_path'].nunique()} "
              "files")
    print(f"wrote {folder / 'splits.csv'} and {folder}/{{train,val,test}}/{{real,fake}}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
