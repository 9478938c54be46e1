"""Benchmark: how many times faster than real time one CPU core scores a 60-second file.

Prints model load time separately, then the end-to-end time of `inference.predict_file` (decode, features,
network, aggregation) as x real time = audio seconds / wall seconds. The first call includes graph tracing and
is reported on its own; the figure to quote is the median of the following repeats (the best one is printed too,
as it is the least disturbed by other processes on a shared machine).

    python bench/predict_speed.py [--model models/<name>.keras] [--seconds 60] [--repeats 5] [--hop S]

Without --model an untrained baseline is built with default Params (weights do not change the speed).
"""
import os

# One core: pin BLAS/OpenMP pools before numpy and TensorFlow start their threads.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_variable] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np
import soundfile


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained .keras model (default: untrained baseline)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic file")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the first one")
    parser.add_argument("--hop", type=float, help="window hop in seconds (default: the model's)")
    return parser.parse_args(argv)


def pin_to_one_core() -> None:
    import tensorflow as tf

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def write_synthetic_speechlike(path: Path, seconds: float, sample_rate: int = 16000) -> None:
    """Seeded noise under a wandering harmonic tone, so the spectrogram is not trivially empty."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 150.0 + 50.0 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2 + 0.01 * rng.standard_normal(len(t))
    soundfile.write(str(path), signal.astype(np.float32), sample_rate)


def untrained_baseline(folder: Path) -> Path:
    from deepfake_detector.model import model_store, models
    from deepfake_detector.params import Params

    params = Params()
    model_path = folder / "baseline_untrained.keras"
    model_store.save_detector(models.build_model("baseline", params), model_path, params, threshold=0.5)
    return model_path


def main(argv=None) -> int:
    args = parse_args(argv)
    pin_to_one_core()
    from deepfake_detector.model import inference, model_store

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model_path = args.model or untrained_baseline(folder)
        started = time.perf_counter()
        detector = model_store.load_detector(model_path)
        load_s = time.perf_counter() - started
        clip = folder / "synthetic.wav"
        write_synthetic_speechlike(clip, args.seconds)

        timings = []
        for _ in range(args.repeats + 1):
            started = time.perf_counter()
            result = inference.predict_file(detector, clip, hop_s=args.hop)
            timings.append(time.perf_counter() - started)
    steady_s = statistics.median(timings[1:])
    params = inference.inference_params(detector, args.hop)
    print(f"model: {model_path.name} ({detector.model.count_params():,} parameters), "
          f"window {params.window_s:g} s, hop {params.hop_s:g} s, {len(result['windows'])} windows")
    print(f"model load: {load_s:.2f} s")
    print(f"first call: {timings[0]:.3f} s = {args.seconds / timings[0]:.0f}x real time (includes tracing)")
    print(f"steady state: {steady_s:.3f} s per {args.seconds:g} s file = {args.seconds / steady_s:.0f}x real time "
          f"(median of {args.repeats}, one CPU core; best {args.seconds / min(timings[1:]):.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
