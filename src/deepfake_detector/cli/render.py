"""Render every clip under a class-folder tree into magma mel-spectrogram PNGs (resumable, parallel).

Example: python scripts/generate_spectrograms.py --input data_clean --output spectrograms
         python scripts/generate_spectrograms.py --scale linear --output spectrograms_linear
"""
import argparse
import sys
from pathlib import Path


from deepfake_detector.params import SCALES, Params
from deepfake_detector.data.spectrograms import SpectrogramError, default_jobs, generate


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
    parser.add_argument("--scale", choices=SCALES, default=defaults.scale,
                        help="frequency axis: mel bands, or equal-width linear-frequency bands (same picture size)")
    parser.add_argument("--force", action="store_true", help="re-render everything, even unchanged files")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.window <= 0 or args.hop <= 0 or args.jobs < 1:
            raise SpectrogramError("--window and --hop must be positive and --jobs at least 1")
        params = Params().replace(window_s=args.window, hop_s=args.hop, min_duration_s=args.min_duration,
                                  scale=args.scale)
        summary = generate(args.input, args.output, params, jobs=args.jobs, force=args.force)
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
