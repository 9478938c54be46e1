"""Render speed: the reference matplotlib-figure renderer vs our generate pipeline, same clips, one run.

Reference: librosa.load -> mel -> power_to_db -> librosa.display.specshow in a matplotlib figure, axes off,
savefig(bbox_inches='tight'), one file at a time in one process. Ours: spectrograms.generate (hashing, decoding,
resampling, windows, PNG, manifest) with --jobs 1 and with the default number of jobs. Decoding is timed in all.

Example: python bench/render_speed.py --input ../shared/data/for-norm-mini --clips 48
"""
import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from deepfake_detector.params import AUDIO_EXTENSIONS, CLASS_SYNONYMS, Params  # noqa: E402
from deepfake_detector.spectrograms import default_jobs, generate  # noqa: E402


def synthetic_speech(seconds: float, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """A crude voice: a glottal pulse train with a wandering pitch through three formants, in syllables."""
    from scipy.signal import lfilter

    n = int(seconds * sample_rate)
    pitch = 110 + 60 * rng.random() + 20 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * np.arange(n) / sample_rate)
    phase = np.cumsum(pitch / sample_rate)
    source = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(float) + 0.02 * rng.standard_normal(n)
    voice = np.zeros(n)
    for formant, bandwidth in ((rng.uniform(500, 800), 80), (rng.uniform(1100, 1800), 100), (2600, 150)):
        radius = np.exp(-np.pi * bandwidth / sample_rate)
        angle = 2 * np.pi * formant / sample_rate
        voice += lfilter([1.0], [1.0, -2 * radius * np.cos(angle), radius ** 2], source)
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * np.arange(n) / sample_rate)
    voice *= syllables
    return (0.5 * voice / np.max(np.abs(voice))).astype(np.float32)


def make_synthetic_clips(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / ("real" if index % 2 else "fake") / f"clip{index:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), synthetic_speech(rng.uniform(1.5, 6.0), rng), 16000)
        paths.append(path)
    return paths


def link_existing_clips(source_dir: Path, folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Symlink a seeded sample of `count` audio files into folder/<class>/ so both renderers see the same set."""
    found = sorted(path for path in source_dir.rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS)
    if not found:
        raise SystemExit(f"error: no audio files under {source_dir}")
    chosen = random.Random(seed).sample(found, min(count, len(found)))
    paths = []
    for index, path in enumerate(chosen):
        class_name = next((CLASS_SYNONYMS[part.lower()] for part in path.parts if part.lower() in CLASS_SYNONYMS),
                          "real")
        link = folder / class_name / f"{index:03d}_{path.name}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path.resolve())
        paths.append(link)
    return paths


def render_reference(path: Path, png_path: Path) -> None:
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt

    waveform, sample_rate = librosa.load(path)
    decibels = librosa.power_to_db(librosa.feature.melspectrogram(y=waveform, sr=sample_rate), ref=np.max)
    figure = plt.figure(figsize=(10, 4))
    librosa.display.specshow(decibels, sr=sample_rate, x_axis="time", y_axis="mel")
    plt.axis("off")
    plt.savefig(png_path, bbox_inches="tight")
    plt.close(figure)


def time_reference(paths: list[Path], output: Path) -> float:
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for index, path in enumerate(paths):
        render_reference(path, output / f"{index:03d}.png")
    return time.perf_counter() - start


def time_ours(input_dir: Path, output: Path, jobs: int) -> tuple[float, int]:
    start = time.perf_counter()
    summary = generate(input_dir, output, Params(), jobs=jobs, force=True, progress=False)
    return time.perf_counter() - start, summary.images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="folder of clips (default: synthetic speech-like)")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="jobs for the parallel run")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best of each is reported")
    args = parser.parse_args(argv)
    if args.input is not None and not args.input.is_dir():
        print(f"error: input folder {args.input} does not exist", file=sys.stderr)
        return 1
    os.environ.setdefault("MPLBACKEND", "Agg")

    with tempfile.TemporaryDirectory(prefix="render_speed_") as scratch:
        scratch = Path(scratch)
        if args.input is None:
            paths = make_synthetic_clips(scratch / "clips", args.clips)
        else:
            paths = link_existing_clips(args.input, scratch / "clips", args.clips)
        # Warm up imports and caches for both renderers so neither pays one-off start-up inside the timing.
        render_reference(paths[0], scratch / "warmup.png")
        time_ours(scratch / "clips", scratch / "warmup", 1)

        # Interleaved rounds, best of each: other load on the machine only ever slows a round down.
        rounds = []
        for _ in range(args.repeats):
            rounds.append((time_reference(paths, scratch / "reference"),
                           *time_ours(scratch / "clips", scratch / "ours1", 1),
                           time_ours(scratch / "clips", scratch / "oursN", args.jobs)[0]))
        reference_s, one_job_s, images, many_jobs_s = (min(values) for values in zip(*rounds))

    count = len(paths)
    source = args.input or "synthetic speech-like clips"
    print(f"{count} clips from {source}; {os.cpu_count()} CPUs; best of {args.repeats} rounds; ours made {images} images "
          f"({images / count:.2f} windows per clip), the reference 1 image per clip")
    print(f"{'renderer':<22} {'seconds':>8} {'files/s':>8} {'images/s':>9} {'ms/file':>8}")
    results = {"reference (matplotlib)": (reference_s, count), "ours --jobs 1": (one_job_s, images),
               f"ours --jobs {args.jobs}": (many_jobs_s, images)}
    for name, (seconds, made) in results.items():
        print(f"{name:<22} {seconds:>8.2f} {count / seconds:>8.1f} {made / seconds:>9.1f} "
              f"{1000 * seconds / count:>8.1f}")
    print(f"speed-up in files/s: ours --jobs 1 / reference = {reference_s / one_job_s:.2f}x, "
          f"ours --jobs {args.jobs} / reference = {reference_s / many_jobs_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
