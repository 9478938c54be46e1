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
from threadpoolctl import threadpool_limits  # noqa: E402

from deepfake_detector.params import AUDIO_EXTENSIONS, CLASS_SYNONYMS, Params  # noqa: E402
from deepfake_detector.data.spectrograms import default_jobs, generate  # noqa: E402


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


def cpu_seconds() -> float:
    # User + system time of this process and of its finished children (the pool's workers).
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def time_reference(paths: list[Path], output: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, images made) to render every clip the reference way."""
    output.mkdir(parents=True, exist_ok=True)
    start, start_cpu = time.perf_counter(), cpu_seconds()
    with threadpool_limits(1):  # the same BLAS setting ours uses, so only the rendering approach differs
        for index, path in enumerate(paths):
            render_reference(path, output / f"{index:03d}.png")
    return time.perf_counter() - start, cpu_seconds() - start_cpu, len(paths)


def time_ours(input_dir: Path, output: Path, jobs: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, images made) for one full generate run."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    summary = generate(input_dir, output, Params(), jobs=jobs, force=True, progress=False)
    return time.perf_counter() - start, cpu_seconds() - start_cpu, summary.images


def profile_ours(paths: list[Path], output: Path, params: Params = Params()) -> dict[str, float]:
    """Seconds per stage of our renderer over every clip, one thread, in this process (where the time goes)."""
    from deepfake_detector.data import audio, features
    from deepfake_detector.io_utils import atomic_write_bytes, sha256_file

    stages = dict.fromkeys(["hash", "decode + resample", "STFT", "mel + dB", "colour map", "PNG encode",
                            "write + rename"], 0.0)

    def timed(stage, function, *arguments):
        started = time.perf_counter()
        result = function(*arguments)
        stages[stage] += time.perf_counter() - started
        return result

    with threadpool_limits(1):
        for index, path in enumerate(paths):
            timed("hash", sha256_file, path)
            try:
                waveform, _ = timed("decode + resample", audio.load_audio, path, params)
            except audio.AudioError:  # too short, silent, corrupt: generate lists and skips it too
                continue
            segments, _ = features.split_windows(waveform, params)
            spectrum = timed("STFT", features.stft, segments, params)
            normalised = timed("mel + dB", features.band_from_spectrum, spectrum, params)
            for window_index, window in enumerate(normalised):
                image = timed("colour map", features.colourise, window)
                data = timed("PNG encode", features.encode_png, image)
                timed("write + rename", atomic_write_bytes, output / f"{index:03d}_{window_index}.png", data)
    return stages


def print_profile(stages: dict[str, float], count: int) -> None:
    total = sum(stages.values())
    print(f"\nwhere our time goes (one thread, in-process, {count} clips; best round): "
          f"{1000 * total / count:.1f} ms/file")
    for stage, seconds in stages.items():
        print(f"  {stage:<18} {1000 * seconds / count:>7.1f} ms/file {100 * seconds / total:>6.1f} %")


def print_results(best: dict[str, tuple[float, float, int]], count: int, args) -> None:
    names = list(best)
    images = best[names[1]][2]
    print(f"{count} clips from {args.input or 'synthetic speech-like clips'}; {os.cpu_count()} CPUs; "
          f"best of {args.repeats} rounds; load average {os.getloadavg()[0]:.1f}; ours made {images} images "
          f"({images / count:.2f} windows per clip), the reference 1 image per clip")
    print(f"{'renderer':<22} {'wall s':>7} {'files/s':>8} {'images/s':>9} {'ms/file':>8} {'CPU ms/file':>12}")
    for name, (wall_s, cpu_s, made) in best.items():
        print(f"{name:<22} {wall_s:>7.2f} {count / wall_s:>8.1f} {made / wall_s:>9.1f} "
              f"{1000 * wall_s / count:>8.1f} {1000 * cpu_s / count:>12.1f}")
    reference_s, reference_cpu = best[names[0]][0], best[names[0]][1]
    print(f"speed-up in files/s: {names[1]} / reference = {reference_s / best[names[1]][0]:.2f}x, "
          f"{names[2]} / reference = {reference_s / best[names[2]][0]:.2f}x")
    # CPU seconds do not grow when other processes take turns on the cores, so on a busy machine this ratio is
    # the steadier measure of the work per file.
    print(f"CPU time per file: reference / {names[1]} = {reference_cpu / best[names[1]][1]:.2f}x, "
          f"reference / {names[2]} = {reference_cpu / best[names[2]][1]:.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="folder of clips (default: synthetic speech-like)")
    parser.add_argument("--clips", type=int, default=200,
                        help="clips per round; a few dozen mostly measure the process pool's start-up")
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

        renderers = {
            "reference (matplotlib)": lambda: time_reference(paths, scratch / "reference"),
            "ours --jobs 1": lambda: time_ours(scratch / "clips", scratch / "ours1", 1),
            f"ours --jobs {args.jobs}": lambda: time_ours(scratch / "clips", scratch / "oursN", args.jobs),
        }
        # Interleaved rounds, best of each: other load on the machine only ever slows a round down.
        rounds = [[render() for render in renderers.values()] for _ in range(args.repeats)]
        best = {name: tuple(min(values) for values in zip(*timings))
                for name, timings in zip(renderers, zip(*rounds))}
        profiles = [profile_ours(paths, Path(tempfile.mkdtemp(dir=scratch))) for _ in range(args.repeats)]
    print_results(best, len(paths), args)
    print_profile(min(profiles, key=lambda stages: sum(stages.values())), len(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
