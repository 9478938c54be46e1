"""Render every clip of a dataset root into magma mel-spectrogram PNGs (resumable, parallel).

Example: python scripts/generate_spectrograms.py --input data_clean --output spectrograms
         python scripts/generate_spectrograms.py --input /data/ASVspoof2019 --output spectrograms/la19
         python scripts/generate_spectrograms.py --scale linear --output spectrograms_linear
Across N machines (or jobs) on the same input:
    python scripts/generate_spectrograms.py --input data_clean --output shard0 --shard 0/3   # ... 1/3, 2/3
    python scripts/generate_spectrograms.py --merge shard0 shard1 shard2 --output spectrograms
"""
import argparse
import sys
from pathlib import Path


from deepfake_detector.datasets import add_dataset_arguments
from deepfake_detector.params import SCALES, Params
from deepfake_detector.data.spectrograms import (SpectrogramError, default_jobs, generate, merge_shards,
                                                 parse_shard)


def parse_args(argv):
    defaults = Params()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("data_clean"),
                        help="dataset root: class folders, a public corpus or a manifest .csv (default: data_clean)")
    parser.add_argument("--output", type=Path, default=Path("spectrograms"), help="default: spectrograms")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: CPU count)")
    parser.add_argument("--window", type=float, default=defaults.window_s, help="seconds per image")
    parser.add_argument("--hop", type=float, default=defaults.hop_s, help="seconds between window starts")
    parser.add_argument("--min-duration", type=float, default=defaults.min_duration_s,
                        help="reject clips shorter than this many seconds")
    parser.add_argument("--scale", choices=SCALES, default=defaults.scale,
                        help="frequency axis: mel bands, or equal-width linear-frequency bands (same picture size)")
    parser.add_argument("--fmax", type=float, default=defaults.fmax,
                        help="top of the picture's band in Hz (default: half the sample rate); a model trained on "
                             "band-limited audio can keep its rows for the band it has seen")
    parser.add_argument("--force", action="store_true", help="re-render everything, even unchanged files")
    add_dataset_arguments(parser)
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="render only the files whose content hash falls in shard I of N (0 <= I < N)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="SHARD_DIR",
                        help="join the folders of shards 0..N-1 into --output instead of rendering")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.window <= 0 or args.hop <= 0 or args.jobs < 1:
            raise SpectrogramError("--window and --hop must be positive and --jobs at least 1")
        if args.merge:
            summary = merge_shards(args.merge, args.output, force=args.force)
            print(f"merged {len(args.merge)} shards: ", end="")
        else:
            params = Params().replace(window_s=args.window, hop_s=args.hop, min_duration_s=args.min_duration,
                                      scale=args.scale, fmax=args.fmax)
            shard = parse_shard(args.shard) if args.shard else (0, 1)
            summary = generate(args.input, args.output, params, jobs=args.jobs, force=args.force, shard=shard,
                               layout=args.layout, strict=args.strict)
    except (SpectrogramError, ValueError) as error:  # ValueError: a --fmax outside the band Params allows
        print(f"error: {error}", file=sys.stderr)
        return 1
    print_summary(summary, args.output)
    return 0


def print_summary(summary, output: Path) -> None:
    print(f"{summary.images} images from {summary.rendered + summary.reused} files "
          f"({summary.rendered} rendered, {summary.reused} unchanged) in {output}")
    if summary.errors:
        print(f"{summary.failed} file(s) skipped and {summary.dataset_problems} dataset problem(s) (protocol lines "
              f"without audio, audio without protocol line), listed in {output / 'errors.csv'}:")
        for path, reason in summary.errors[:10]:
            print(f"  {path}: {reason}")
        if len(summary.errors) > 10:
            print(f"  ... and {len(summary.errors) - 10} more")


def render_root(root: Path, output: Path, layout: str | None, strict: bool, jobs: int | None = None) -> None:
    """Render a dataset root with the default settings (resumable), for commands that accept a root directly.
    Raises SpectrogramError."""
    print(f"rendering dataset root {root} into {output}")
    summary = generate(root, output, Params(), jobs=jobs or default_jobs(), layout=layout, strict=strict)
    print_summary(summary, output)


if __name__ == "__main__":
    sys.exit(main())
