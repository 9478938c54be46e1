"""Render every clip under a class-folder tree into magma mel-spectrogram PNGs (resumable, parallel).

Example: python scripts/generate_spectrograms.py --input data_clean --output spectrograms
Across N machines (or jobs) on the same input:
    python scripts/generate_spectrograms.py --input data_clean --output shard0 --shard 0/3   # ... 1/3, 2/3
    python scripts/generate_spectrograms.py --merge shard0 shard1 shard2 --output spectrograms
"""
import argparse
import sys
from pathlib import Path


from deepfake_detector.params import Params
from deepfake_detector.data.spectrograms import (SpectrogramError, default_jobs, generate, merge_shards,
                                                 parse_shard)


def parse_args(argv):
    defaults = Params()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("data_clean"),
                        help="folder with <class>/... or <split>/<class>/... audio (default: data_clean)")
    parser.add_argument("--output", type=Path, default=Path("spectrograms"), help="default: spectrograms")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: CPU count)")
    parser.add_argument("--window", type=float, default=defaults.window_s, help="seconds per image")
    parser.add_argument("--hop", type=float, default=defaults.hop_s, help="seconds between window starts")
    parser.add_argument("--min-duration", type=float, default=defaults.min_duration_s,
                        help="reject clips shorter than this many seconds")
    parser.add_argument("--force", action="store_true", help="re-render everything, even unchanged files")
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
            params = Params().replace(window_s=args.window, hop_s=args.hop, min_duration_s=args.min_duration)
            shard = parse_shard(args.shard) if args.shard else (0, 1)
            summary = generate(args.input, args.output, params, jobs=args.jobs, force=args.force, shard=shard)
    except SpectrogramError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{summary.images} images from {summary.rendered + summary.reused} files "
          f"({summary.rendered} rendered, {summary.reused} unchanged) in {args.output}")
    if summary.errors:
        print(f"{summary.failed} file(s) skipped, listed in {args.output / 'errors.csv'}:")
        for path, reason in summary.errors[:10]:
            print(f"  {path}: {reason}")
        if len(summary.errors) > 10:
            print(f"  ... and {len(summary.errors) - 10} more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
