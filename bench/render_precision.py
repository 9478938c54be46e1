"""What the single-precision STFT of the render fast path does to pictures and model scores.

For every clip, the pictures of today's renderer (features.stft, float32 FFT) are compared with the same recipe
through librosa.stft (float64 FFT, what the renderer used before): share of pixels that differ, largest change in
colour-map index (0-255), and with --model the largest change in the model's per-file p(fake).

Example: python bench/render_precision.py --input ../shared/data/for-norm-mini --model models/compact_cmn.keras
"""
import argparse
import os
import random
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa  # noqa: E402
import numpy as np  # noqa: E402

from deepfake_detector.data import audio, features  # noqa: E402
from deepfake_detector.params import AUDIO_EXTENSIONS, Params  # noqa: E402


def float64_stft(segments: np.ndarray, params: Params) -> np.ndarray:
    return librosa.stft(segments, n_fft=params.n_fft, hop_length=params.hop_length)


def both_renderings(waveform: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    fast, _ = features.waveform_to_images(waveform, params)
    with mock.patch.object(features, "stft", float64_stft):
        reference, _ = features.waveform_to_images(waveform, params)
    return fast, reference


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("../shared/data/for-norm-mini"),
                        help="folder searched recursively for audio")
    parser.add_argument("--clips", type=int, default=200, help="seeded sample of clips")
    parser.add_argument("--scale", default="mel", help="front end (mel or linear)")
    parser.add_argument("--model", type=Path, default=None, help="a trained .keras model to score both renderings")
    args = parser.parse_args(argv)
    found = sorted(path for path in args.input.rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS)
    if not found:
        print(f"error: no audio files under {args.input}", file=sys.stderr)
        return 1
    paths = random.Random(0).sample(found, min(args.clips, len(found)))
    detector = None
    params = Params(scale=args.scale)
    if args.model is not None:
        from deepfake_detector.model import inference, model_store

        detector = model_store.load_detector(args.model)
        params = inference.inference_params(detector)
    changed = total = windows = 0
    largest_step, score_changes = 0, []
    for path in paths:
        try:
            waveform, _ = audio.load_audio(path, params)
        except audio.AudioError as error:
            print(f"skipped {path.name}: {error}", file=sys.stderr)
            continue
        fast, reference = both_renderings(waveform, params)
        steps = np.abs(features.picture_levels(fast) - features.picture_levels(reference))
        changed, total, windows = changed + int((steps > 0).sum()), total + steps.size, windows + len(fast)
        largest_step = max(largest_step, int(steps.max()))
        if detector is not None:
            scores = [inference.file_score(detector, inference.raw_scores(detector, images))
                      for images in (fast, reference)]
            score_changes.append(abs(scores[0] - scores[1]))
    print(f"{len(paths)} clips from {args.input} ({windows} windows, {params.scale} scale): "
          f"{changed} of {total} pixels differ ({100 * changed / max(total, 1):.4f} %), "
          f"largest colour-map step {largest_step}")
    if score_changes:
        print(f"model {args.model}: per-file p(fake) change max {max(score_changes):.2e}, "
              f"mean {np.mean(score_changes):.2e} over {len(score_changes)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
