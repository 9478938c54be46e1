"""Faithfulness of the heat-maps: deleting the top 10% of pixels by heat vs a random 10%, on the test fakes.

For every test-split fake picture (the model's own input PNG) and every method, the heat-map is computed, then
the top `--fraction` of pixels by heat are replaced by the neutral picture and the drop in p(fake) is compared with
the mean drop over `--random-repeats` random deletions of as many pixels (the baseline, measured in the same run).
A faithful map moves the score toward "real" much more than random deletion: the ratio is top / random.
Also prints p(fake) of the all-neutral picture of each fake: how close each neutral value is to "no information".

    python bench/explain_faithfulness.py [--model models/NAME.keras] [--splits spectrograms/splits.csv]
                                         [--limit N] [--methods occlusion,gradcam] [--out benchmarks/explain.md]
"""
import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

# (method, neutral) rows: both methods with the band-mean neutral, and occlusion with the dB floor for comparison.
ROWS = (("occlusion", "band_mean"), ("gradcam", "band_mean"), ("occlusion", "floor"))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained model .keras (default: newest in models/, as predict)")
    parser.add_argument("--splits", type=Path, default=Path("spectrograms/splits.csv"),
                        help="splits.csv of the model's data; png paths are relative to its folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="use only the first N fakes (quick run)")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--random-repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/explain_faithfulness.md"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepfake_detector.data import features
    from deepfake_detector.model import explain, model_store

    detector = model_store.load_detector(args.model or model_store.latest_model(Path("models")))
    splits = pd.read_csv(args.splits)
    fakes = splits[(splits["split"] == args.split) & (splits["class"] == "fake")].sort_values("png_path")
    if args.limit:
        fakes = fakes.head(args.limit)
    if fakes.empty:
        print(f"error: no {args.split} fakes in {args.splits}", file=sys.stderr)
        return 1
    pictures = [features.load_png(args.splits.parent / path) for path in fakes["png_path"]]
    base = explain.score_pictures(detector, np.stack(pictures))
    commit = (model_store.git_commit() or "unknown")[:7]
    lines = [f"# Explanation faithfulness ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, git {commit})", "",
             f"Command: `python bench/explain_faithfulness.py {' '.join(argv or sys.argv[1:])}`", "",
             f"Model `{detector.name}` ({detector.path}), {len(pictures)} {args.split} fake pictures (windows), "
             f"mean p(fake) {base.mean():.3f}; delete {100 * args.fraction:g}% of pixels; random = mean of "
             f"{args.random_repeats} random deletions (seed {args.seed}).", "",
             "| method | neutral | drop, top pixels | drop, random pixels | ratio top/random "
             "| fakes where top > random | p(fake) of the all-neutral picture | s per window |",
             "|---|---|---|---|---|---|---|---|"]
    for method, neutral in ROWS:
        options = {"neutral": neutral} if method == "occlusion" else {}
        top, rand, started = [], [], time.perf_counter()
        for index, picture in enumerate(tqdm(pictures, desc=f"{method}/{neutral}", unit="fake")):
            heat = explain.explain(detector, picture, method, **options)
            drop_top, drop_random = explain.deletion_drops(detector, picture, heat, args.fraction,
                                                           args.random_repeats, args.seed + index, neutral)
            top.append(drop_top)
            rand.append(drop_random)
        seconds = (time.perf_counter() - started) / len(pictures)
        blank = explain.score_pictures(detector, np.stack([explain.neutral_picture(p, neutral) for p in pictures]))
        top, rand = np.array(top), np.array(rand)
        # A ratio means something only when random deletion moved the score toward real at all.
        ratio = f"{top.mean() / rand.mean():.1f}" if rand.mean() > 0 else "n/a (random <= 0)"
        row = (f"| {method} | {neutral} | {top.mean():+.4f} | {rand.mean():+.4f} | {ratio} | "
               f"{int((top > rand).sum())}/{len(top)} | {blank.mean():.3f} | {seconds:.2f} |")
        print(row, flush=True)
        lines.append(row)
    lines += ["", "Drops are in calibrated p(fake): positive = the deletion moved the score toward real."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
