"""Training-data augmentation: seeded waveform transforms, fixed corruptions for robustness tests, SpecAugment.

Every waveform transform is a pure function `(waveform float32 mono, sample_rate, rng, **options) -> waveform`
that keeps the number of samples and the dtype, so the rendered pictures keep their windows. Transforms that
change the length (codecs, time stretch, resampling) crop, or loop the signal end to start, back to it.

Two places use them:
- `render_augmented_copies` renders `config.copies` augmented versions of every TRAIN source file into
  `<data>/augmented/<hash>/<class>/*.png` (deterministic from config.seed and the file's sha256, resumable) and
  returns split-table rows that the training loop appends to the train table only;
- `spec_augment` / `make_spec_augment` mask random time columns and mel rows of uint8 pictures inside tf.data.

`corrupt(waveform, sr, kind)` applies one of the fixed CORRUPTIONS (always the same output) to measure how a model
copes with noise, MP3 and telephone channels; it is for evaluation only.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import pandas as pd
import soxr
from scipy import signal
from tqdm import tqdm

from deepfake_detector.data import audio, features
from deepfake_detector.io_utils import atomic_write_text, pool_context
from deepfake_detector.params import Params

NOISE_KINDS = ("white", "pink", "background")
# ffmpeg encoder, container format and the bitrates (kbit/s) a random round trip picks from, per codec.
CODECS = {
    "mp3": ("libmp3lame", "mp3", (32, 48, 64, 96, 128)),
    "vorbis": ("libvorbis", "ogg", (32, 48, 64)),
    "opus": ("libopus", "ogg", (12, 16, 24, 32, 48)),
}
# libopus only runs at 8/12/16/24/48 kHz, so Opus is encoded at 48 kHz and decoded back to the clip's rate.
_CODEC_RATE = {"opus": 48000}
# The codec delay searched when aligning a decoded signal with its source (seconds, either direction).
_MAX_CODEC_DELAY_S = 0.1
TELEPHONE_RATE = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
# Frames for picking the quietest stretches of a clip as background noise (50 ms, the quietest tenth).
_BACKGROUND_FRAME_S = 0.05
_BACKGROUND_FRACTION = 0.1
# Frames below this RMS are digital silence, not background noise worth copying.
_SILENT_RMS = 1e-6
SPECAUGMENT = "specaugment"
CORRUPTIONS = ("noise10db", "mp3_64k", "telephone")
_CORRUPTION_SEED = 20240611
AUGMENTED_FOLDER = "augmented"
SPLIT_COLUMNS = ["png_path", "class", "split", "source_path", "source_sha256", "group"]


class CodecUnavailable(RuntimeError):
    """ffmpeg, or the ffmpeg encoder a codec needs, is not installed."""


# ---------------------------------------------------------------------------------------------- helpers

def fit_length(waveform: np.ndarray, n_samples: int) -> np.ndarray:
    """Crop to `n_samples`, or loop the signal end to start until it is that long (no silent padding)."""
    if len(waveform) >= n_samples:
        return waveform[:n_samples]
    repeats = int(np.ceil(n_samples / max(len(waveform), 1)))
    return np.tile(waveform, repeats)[:n_samples]


def rms(waveform: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))


def _like(result: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Back to the original's length and dtype, whatever a library returned."""
    return np.ascontiguousarray(fit_length(np.asarray(result), len(original)), dtype=original.dtype)


def peak_limit(waveform: np.ndarray, ceiling: float = 0.99, knee: float = 0.8) -> np.ndarray:
    """Soft limiter: samples above `knee` are bent by tanh so no sample exceeds `ceiling`; quieter ones untouched."""
    magnitude = np.abs(waveform)
    span = ceiling - knee
    bent = knee + span * np.tanh((magnitude - knee) / span)
    return np.where(magnitude > knee, np.sign(waveform) * bent, waveform).astype(waveform.dtype)


# ---------------------------------------------------------------------------------------------- noise

def white_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n_samples)


def pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """1/f power spectrum: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = frequencies[1] if len(frequencies) > 1 else 1.0  # no infinite DC gain
    return np.fft.irfft(spectrum / np.sqrt(frequencies), n=n_samples)


def background_noise(source: np.ndarray, n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Noise built from the quietest non-silent 50 ms frames of `source`, overlap-added in random order.

    Hann windows at 50 % overlap sum to a constant, so the joins do not click. A source with no usable frames
    (digital silence only) falls back to white noise.
    """
    frame = max(int(_BACKGROUND_FRAME_S * sample_rate) // 2 * 2, 2)
    frames = librosa.util.frame(fit_length(source, max(len(source), frame)), frame_length=frame,
                                hop_length=frame // 2, axis=0)  # (n_frames, frame)
    frame_rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    audible = np.flatnonzero(frame_rms > _SILENT_RMS)
    if len(audible) == 0:
        return white_noise(n_samples, rng)
    n_quiet = max(1, int(len(audible) * _BACKGROUND_FRACTION))
    quiet = frames[audible[np.argsort(frame_rms[audible])[:n_quiet]]]
    window = signal.windows.hann(frame, sym=False)
    hop = frame // 2
    n_slots = n_samples // hop + 2
    output = np.zeros(n_slots * hop + frame)
    for slot, pick in enumerate(rng.integers(0, len(quiet), size=n_slots)):
        output[slot * hop:slot * hop + frame] += quiet[pick] * window
    return output[hop:hop + n_samples]  # skip the half-filled fade-in


def add_noise(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator, snr_db: float | None = None,
              kind: str | None = None, snr_db_range: tuple[float, float] = (5.0, 30.0),
              kinds: tuple[str, ...] = NOISE_KINDS, noise_source: np.ndarray | None = None) -> np.ndarray:
    """Add white, pink or background noise so that RMS(signal) / RMS(noise) equals `snr_db` (random if None).

    Both RMS values are taken over the whole clip. Background noise comes from `noise_source` (another clip) or,
    when it is None, from the clip itself. The sum is not limited, so it may exceed +-1.
    """
    kind = kind or str(rng.choice(kinds))
    snr_db = float(rng.uniform(*snr_db_range)) if snr_db is None else float(snr_db)
    n_samples = len(waveform)
    if kind == "white":
        noise = white_noise(n_samples, rng)
    elif kind == "pink":
        noise = pink_noise(n_samples, rng)
    elif kind == "background":
        source = waveform if noise_source is None else noise_source
        noise = background_noise(source, n_samples, sample_rate, rng)
    else:
        raise ValueError(f"unknown noise kind '{kind}'; choose one of: {', '.join(NOISE_KINDS)}")
    signal_rms, noise_rms = rms(waveform), rms(noise)
    if signal_rms == 0.0 or noise_rms == 0.0:
        return waveform.copy()
    scaled = noise * (signal_rms / noise_rms) / 10.0 ** (snr_db / 20.0)
    return _like(waveform + scaled, waveform)


# ---------------------------------------------------------------------------------------------- level

def gain(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator, gain_db: float | None = None,
         gain_db_range: tuple[float, float] = (-12.0, 12.0)) -> np.ndarray:
    """Scale by `gain_db` (random if None), then soft-limit peaks so nothing clips."""
    gain_db = float(rng.uniform(*gain_db_range)) if gain_db is None else float(gain_db)
    return peak_limit(_like(waveform * 10.0 ** (gain_db / 20.0), waveform))


# ---------------------------------------------------------------------------------------------- codecs

@functools.lru_cache(maxsize=1)
def _ffmpeg_encoders() -> frozenset[str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return frozenset()
    listing = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False)
    # Lines look like " A....D libmp3lame   libmp3lame MP3 ..."; the second field is the encoder name.
    return frozenset(line.split()[1] for line in listing.stdout.splitlines() if len(line.split()) > 1)


def available_codecs() -> tuple[str, ...]:
    """The CODECS whose ffmpeg encoder is installed."""
    encoders = _ffmpeg_encoders()
    return tuple(name for name, (encoder, _, _) in CODECS.items() if encoder in encoders)


def _run_ffmpeg(arguments: list[str], data: bytes) -> bytes:
    result = subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", *arguments], input=data,
                            capture_output=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg failed: {lines[-1] if lines else 'unknown error'}")
    return result.stdout


def _align(decoded: np.ndarray, original: np.ndarray, max_lag: int) -> np.ndarray:
    """Shift `decoded` by the lag (within +-max_lag samples) that best matches `original`, then fit its length."""
    correlation = signal.correlate(decoded, original, mode="full", method="fft")
    lags = signal.correlation_lags(len(decoded), len(original), mode="full")
    allowed = np.abs(lags) <= max_lag
    lag = int(lags[allowed][np.argmax(correlation[allowed])])
    return decoded[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, decoded.dtype), decoded])


def codec_round_trip(waveform: np.ndarray, sample_rate: int, codec: str, bitrate_kbps: int) -> np.ndarray:
    """Encode with ffmpeg and decode again through pipes; the result is aligned to the input (codec delay).

    Raises CodecUnavailable when ffmpeg or the codec's encoder is missing.
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec '{codec}'; choose one of: {', '.join(CODECS)}")
    encoder, container, _ = CODECS[codec]
    if encoder not in _ffmpeg_encoders():
        raise CodecUnavailable(f"ffmpeg with the '{encoder}' encoder is needed for {codec} "
                               "(apt-get install ffmpeg)")
    raw = ["-f", "f32le", "-ar", str(sample_rate), "-ac", "1"]
    # The encoder sees the limited signal: a float sample beyond +-1 would clip inside it anyway.
    pcm = peak_limit(waveform.astype(np.float32)).astype("<f4").tobytes()
    encoded = _run_ffmpeg([*raw, "-i", "pipe:0", "-ar", str(_CODEC_RATE.get(codec, sample_rate)),
                           "-c:a", encoder, "-b:a", f"{bitrate_kbps}k", "-f", container, "pipe:1"], pcm)
    decoded = np.frombuffer(_run_ffmpeg(["-i", "pipe:0", *raw, "pipe:1"], encoded), dtype="<f4")
    aligned = _align(decoded, waveform, int(_MAX_CODEC_DELAY_S * sample_rate))
    return _like(aligned, waveform)


def codec(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator,
          codecs: tuple[str, ...] = tuple(CODECS), bitrate_kbps: int | None = None) -> np.ndarray:
    """Round trip through a random installed codec of `codecs` at a random bitrate from its list.

    Codecs ffmpeg lacks are skipped with a warning; with none left the clip is returned unchanged.
    """
    usable = [name for name in codecs if name in available_codecs()]
    if len(usable) < len(codecs):
        warnings.warn(f"skipping codec(s) {sorted(set(codecs) - set(usable))}: not available in ffmpeg",
                      stacklevel=2)
    if not usable:
        return waveform.copy()
    name = str(rng.choice(usable))
    bitrate_kbps = int(rng.choice(CODECS[name][2])) if bitrate_kbps is None else bitrate_kbps
    return codec_round_trip(waveform, sample_rate, name, bitrate_kbps)


# ---------------------------------------------------------------------------------------------- channel

def telephone(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator,
              band_pass: bool | None = None) -> np.ndarray:
    """Resample to 8 kHz and back (soxr), with a 300-3400 Hz band-pass half of the time when `band_pass` is None."""
    band_pass = bool(rng.random() < 0.5) if band_pass is None else band_pass
    narrow = soxr.resample(waveform.astype(np.float64), sample_rate, TELEPHONE_RATE, quality="HQ")
    if band_pass:
        sections = signal.butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
        narrow = signal.sosfiltfilt(sections, narrow)
    return _like(soxr.resample(narrow, TELEPHONE_RATE, sample_rate, quality="HQ"), waveform)


# ---------------------------------------------------------------------------------------------- voice and room

def pitch_shift(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator, semitones: float | None = None,
                max_semitones: float = 2.0) -> np.ndarray:
    """Shift the pitch by `semitones` (uniform in +-max_semitones if None) at unchanged duration."""
    semitones = float(rng.uniform(-max_semitones, max_semitones)) if semitones is None else float(semitones)
    shifted = librosa.effects.pitch_shift(waveform.astype(np.float32), sr=sample_rate, n_steps=semitones)
    return _like(shifted, waveform)


def time_stretch(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator, rate: float | None = None,
                 rate_range: tuple[float, float] = (0.9, 1.1)) -> np.ndarray:
    """Speak faster (rate > 1) or slower at unchanged pitch, then crop or loop back to the original length."""
    rate = float(rng.uniform(*rate_range)) if rate is None else float(rate)
    return _like(librosa.effects.time_stretch(waveform.astype(np.float32), rate=rate), waveform)


def room_impulse_response(sample_rate: int, rng: np.random.Generator, rt60_s: float,
                          direct_to_reverb_db: float) -> np.ndarray:
    """A unit direct path followed by noise decaying 60 dB over `rt60_s`, its energy set by the D/R ratio."""
    t = np.arange(1, int(rt60_s * sample_rate)) / sample_rate
    tail = rng.standard_normal(len(t)) * 10.0 ** (-3.0 * t / rt60_s)  # amplitude -60 dB at rt60
    tail *= np.sqrt(10.0 ** (-direct_to_reverb_db / 10.0) / np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def reverb(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator, rt60_s: float | None = None,
           rt60_range: tuple[float, float] = (0.2, 0.8), direct_to_reverb_db: float | None = None,
           direct_to_reverb_range: tuple[float, float] = (-3.0, 6.0)) -> np.ndarray:
    """Convolve with a synthetic room response; the output keeps the length and the RMS level of the input."""
    rt60_s = float(rng.uniform(*rt60_range)) if rt60_s is None else float(rt60_s)
    if direct_to_reverb_db is None:
        direct_to_reverb_db = float(rng.uniform(*direct_to_reverb_range))
    response = room_impulse_response(sample_rate, rng, rt60_s, direct_to_reverb_db)
    wet = signal.fftconvolve(waveform.astype(np.float64), response)[:len(waveform)]
    level = rms(waveform) / max(rms(wet), 1e-12)
    return _like(wet * level, waveform)


# ---------------------------------------------------------------------------------------------- registry

# Applied in this order when several fire: the voice, the room, the noise, the level, the channel, the codec.
AUGMENTATIONS: dict[str, Callable[..., np.ndarray]] = {
    "pitch": pitch_shift,
    "stretch": time_stretch,
    "reverb": reverb,
    "noise": add_noise,
    "gain": gain,
    "telephone": telephone,
    "codec": codec,
}
AUGMENTATION_NAMES = (*AUGMENTATIONS, SPECAUGMENT)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, how often and how strongly; stored with every augmented folder and model."""

    augmentations: tuple[str, ...] = ()
    probability: float = 0.5  # chance that each selected waveform augmentation fires on a copy
    copies: int = 1  # augmented copies rendered per train source file
    seed: int = 42
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    gain_db_range: tuple[float, float] = (-12.0, 12.0)
    codecs: tuple[str, ...] = tuple(CODECS)
    max_semitones: float = 2.0
    stretch_range: tuple[float, float] = (0.9, 1.1)
    rt60_range: tuple[float, float] = (0.2, 0.8)
    # SpecAugment on the pictures: this many masks per picture, each up to this many columns (frames) or rows.
    time_masks: int = 2
    time_mask_max: int = 20
    freq_masks: int = 2
    freq_mask_max: int = 16

    def __post_init__(self):
        unknown = sorted(set(self.augmentations) - set(AUGMENTATION_NAMES))
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from: {', '.join(AUGMENTATION_NAMES)}")
        if not 0.0 <= self.probability <= 1.0 or self.copies < 0:
            raise ValueError("augment probability must lie in [0, 1] and copies must be >= 0")

    @property
    def waveform_augmentations(self) -> tuple[str, ...]:
        """The selected waveform transforms, in the order they are applied."""
        return tuple(name for name in AUGMENTATIONS if name in self.augmentations)

    @property
    def uses_specaugment(self) -> bool:
        return SPECAUGMENT in self.augmentations

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "AugmentConfig":
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown augment setting(s) {sorted(unknown)}")
        # JSON turns tuples into lists; the dataclass is frozen and hashed, so turn them back.
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})

    def waveform_hash(self, params: Params) -> str:
        """Names the folder of rendered copies: every setting that changes their pixels, and nothing else.

        `copies` is left out so that asking for more copies later reuses the ones already rendered.
        """
        settings = {key: value for key, value in self.to_dict().items()
                    if key not in ("copies", "time_masks", "time_mask_max", "freq_masks", "freq_mask_max")}
        settings["augmentations"] = list(self.waveform_augmentations)
        blob = json.dumps({"augment": settings, "features": params.feature_dict()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def parse_augment_names(text: str) -> tuple[str, ...]:
    """'noise,codec' / 'all' / 'none' (or '') -> augmentation names in canonical order; raises on unknown names."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    if names == {"all"}:
        return AUGMENTATION_NAMES
    if names <= {"none"}:
        return ()
    unknown = sorted(names - set(AUGMENTATION_NAMES))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from: all, none, {', '.join(AUGMENTATION_NAMES)}")
    return tuple(name for name in AUGMENTATION_NAMES if name in names)


def add_augment_arguments(parser: argparse.ArgumentParser) -> None:
    """The --augment and --augment-copies flags, for a training CLI."""
    parser.add_argument("--augment", default="none", metavar="LIST",
                        help=f"comma-separated augmentations for the training data, 'all' or 'none' (default); "
                             f"choose from: {', '.join(AUGMENTATION_NAMES)}")
    parser.add_argument("--augment-copies", type=int, default=1, metavar="N",
                        help="augmented copies rendered per training file (default 1)")


def config_from_args(args: argparse.Namespace, seed: int) -> AugmentConfig:
    return AugmentConfig(augmentations=parse_augment_names(args.augment), copies=args.augment_copies, seed=seed)


def _options(config: AugmentConfig) -> dict[str, dict]:
    """Keyword options each registered transform takes from the config."""
    return {
        "pitch": {"max_semitones": config.max_semitones},
        "stretch": {"rate_range": config.stretch_range},
        "reverb": {"rt60_range": config.rt60_range},
        "noise": {"snr_db_range": config.snr_db_range, "kinds": config.noise_kinds},
        "gain": {"gain_db_range": config.gain_db_range},
        "telephone": {},
        "codec": {"codecs": config.codecs},
    }


def augment_waveform(waveform: np.ndarray, sample_rate: int, config: AugmentConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """Apply each selected transform with `config.probability`, in registry order, then soft-limit the peaks.

    At least one transform always fires (a random one when no coin comes up), so a copy never duplicates the
    original picture.
    """
    names = config.waveform_augmentations
    if not names:
        return waveform.copy()
    chosen = [name for name in names if rng.random() < config.probability] or [str(rng.choice(names))]
    options = _options(config)
    for name in chosen:
        waveform = AUGMENTATIONS[name](waveform, sample_rate, rng, **options[name])
    return peak_limit(waveform)


def corrupt(waveform: np.ndarray, sample_rate: int, kind: str) -> np.ndarray:
    """A fixed, repeatable corruption for robustness evaluation: one of CORRUPTIONS.

    'noise10db': white noise at 10 dB SNR (fixed seed); 'mp3_64k': MP3 round trip at 64 kbit/s (raises
    CodecUnavailable without ffmpeg/libmp3lame); 'telephone': 8 kHz resampling with the 300-3400 Hz band-pass.
    """
    rng = np.random.default_rng(_CORRUPTION_SEED)
    if kind == "noise10db":
        return add_noise(waveform, sample_rate, rng, snr_db=10.0, kind="white")
    if kind == "mp3_64k":
        return codec_round_trip(waveform, sample_rate, "mp3", 64)
    if kind == "telephone":
        return telephone(waveform, sample_rate, rng, band_pass=True)
    raise ValueError(f"unknown corruption '{kind}'; choose one of: {', '.join(CORRUPTIONS)}")


# ---------------------------------------------------------------------------------------------- rendering

@dataclasses.dataclass(frozen=True)
class _SourceTask:
    source_path: str
    sha256: str
    class_name: str


def augmented_dir(data_dir: Path, params: Params, config: AugmentConfig) -> Path:
    return Path(data_dir) / AUGMENTED_FOLDER / config.waveform_hash(params)


def copy_rng(config: AugmentConfig, sha256: str, copy_index: int) -> np.random.Generator:
    """The generator for one copy of one file: fixed by the seed, the file content and the copy number."""
    return np.random.default_rng([config.seed, int(sha256[:16], 16), copy_index])


def _markers(output_dir: Path, task: _SourceTask, copies: int) -> list[Path]:
    return [output_dir / task.class_name / f"{task.sha256[:16]}_a{index:02d}.json" for index in range(copies)]


def _render_source(task: _SourceTask, output_dir: Path, params: Params, config: AugmentConfig) -> list[str]:
    """Render the missing copies of one file; return the PNG paths (relative to output_dir) of all its copies.

    A copy counts as done only when its marker (the list of its PNGs) exists, written after the PNGs, so a
    killed run re-renders at most the copies it was working on.
    """
    markers = _markers(output_dir, task, config.copies)
    if not all(marker.is_file() for marker in markers):
        waveform, _ = audio.load_audio(Path(task.source_path), params)
        for index, marker in enumerate(markers):
            if marker.is_file():
                continue
            augmented = augment_waveform(waveform, params.sample_rate, config, copy_rng(config, task.sha256, index))
            images, windows = features.waveform_to_images(augmented, params)  # (n_windows, n_mels, frames, 3)
            names = [f"{marker.stem}_w{window.index:03d}.png" for window in windows]
            for image, name in zip(images, names):
                features.save_png(image, marker.parent / name)
            atomic_write_text(marker, json.dumps(names) + "\n")
    return [f"{task.class_name}/{name}" for marker in markers for name in json.loads(marker.read_text())]


def _render_safely(task: _SourceTask, output_dir: Path, params: Params,
                   config: AugmentConfig) -> tuple[list[str], str]:
    try:
        return _render_source(task, output_dir, params, config), ""
    except (audio.AudioError, CodecUnavailable, RuntimeError) as error:
        return [], f"{task.source_path}: {error}"


def render_augmented_copies(split_table: pd.DataFrame, data_dir: Path, params: Params, config: AugmentConfig,
                            jobs: int = 1) -> pd.DataFrame:
    """Render `config.copies` augmented versions of every train source file; return their split-table rows.

    PNGs go to `<data_dir>/augmented/<hash>/<class>/<sha16>_aNN_wNNN.png` with `config.json` and `params.json`
    beside them; files already rendered are reused. The rows have the split table's columns, png_path relative
    to `data_dir` and split 'train', so the training loop can append them to the train rows only. Files that
    fail are reported in one warning and left out.
    """
    train = split_table[split_table["split"] == "train"]
    sources = train.drop_duplicates("source_sha256").set_index("source_sha256")
    if train.empty or not config.waveform_augmentations or config.copies == 0:
        return pd.DataFrame(columns=SPLIT_COLUMNS)
    output_dir = augmented_dir(data_dir, params, config)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    params.save(output_dir / "params.json")
    # Split tables store absolute source paths; a relative one is taken relative to the data folder.
    tasks = [_SourceTask(str(Path(data_dir) / row["source_path"]), sha256, str(row["class"]))
             for sha256, row in sources.iterrows()]
    pending = sum(not all(marker.is_file() for marker in _markers(output_dir, task, config.copies))
                  for task in tasks)
    # Starting worker processes takes seconds; a resumed run with little left to do is quicker without them.
    results = _map_with_progress(tasks, output_dir, params, config, jobs=min(jobs, pending))
    failures = [error for _, error in results if error]
    if failures:
        warnings.warn(f"{len(failures)} train file(s) could not be augmented, e.g. {failures[0]}", stacklevel=2)
    prefix = output_dir.relative_to(Path(data_dir)).as_posix()
    # Each copy inherits its source's row, so path, hash and group still keep it in the source's split.
    rows = [
        {**sources.loc[task.sha256, ["class", "source_path", "group"]].to_dict(), "png_path": f"{prefix}/{png}",
         "split": "train", "source_sha256": task.sha256}
        for task, (pngs, _) in zip(tasks, results) for png in pngs
    ]
    return pd.DataFrame(rows, columns=SPLIT_COLUMNS)


def _one_blas_thread() -> None:
    # The workers already use every core; BLAS threads inside each would only fight over them.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _map_with_progress(tasks: list[_SourceTask], output_dir: Path, params: Params, config: AugmentConfig,
                       jobs: int) -> list[tuple[list[str], str]]:
    render = functools.partial(_render_safely, output_dir=output_dir, params=params, config=config)
    progress = dict(total=len(tasks), desc="augmenting train files", unit="file")
    if jobs <= 1:
        return [render(task) for task in tqdm(tasks, **progress)]
    # The caller has usually started TensorFlow's threads, which a fork must not copy: see pool_context.
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=pool_context(),
                                                initializer=_one_blas_thread) as pool:
        return list(tqdm(pool.map(render, tasks, chunksize=1), **progress))


# ---------------------------------------------------------------------------------------------- SpecAugment

def _band_masks(batch, length, count: int, max_width: int, seed):
    """(batch, length) bool: True inside any of `count` random bands of width 0..max_width per example."""
    import tensorflow as tf

    width_seed, start_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    widths = tf.random.stateless_uniform((batch, count), width_seed, minval=0, maxval=max_width + 1,
                                         dtype=tf.int32)
    widths = tf.minimum(widths, length)
    room = tf.cast(length - widths + 1, tf.float32)
    starts = tf.cast(tf.random.stateless_uniform((batch, count), start_seed) * room, tf.int32)
    positions = tf.range(length)[None, None, :]  # (1, 1, length)
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])  # (batch, count, length)
    return tf.reduce_any(inside, axis=1)


def spec_augment(images_uint8, config: AugmentConfig, seed):
    """Mask random time columns and mel rows of uint8 pictures with the darkest magma colour (LUT entry 0).

    `images_uint8` is (batch, H, W, 3) or one (H, W, 3) picture; `seed` is an int or a shape-[2] integer tensor
    (stateless randomness: the same seed gives the same masks). Shape and dtype are kept.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images_uint8)
    single = images.shape.rank == 3
    batch_images = images[None] if single else images  # (batch, H, W, 3)
    seed = tf.constant([seed, 0], tf.int64) if isinstance(seed, int) else tf.cast(seed, tf.int64)
    time_seed, freq_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    shape = tf.shape(batch_images)
    columns = _band_masks(shape[0], shape[2], config.time_masks, config.time_mask_max, time_seed)  # (batch, W)
    rows = _band_masks(shape[0], shape[1], config.freq_masks, config.freq_mask_max, freq_seed)  # (batch, H)
    masked = columns[:, None, :] | rows[:, :, None]  # (batch, H, W)
    darkest = tf.constant(features.magma_lut()[0], dtype=batch_images.dtype)  # (3,)
    result = tf.where(masked[..., None], darkest, batch_images)
    return result[0] if single else result


def make_spec_augment(config: AugmentConfig):
    """An `(image, label) -> (image, label)` function for dataset.make_dataset(augment=...).

    Seeds come from a tf.random.Generator seeded with config.seed, so each picture in each epoch gets fresh
    masks; with parallel map calls the order in which pictures draw seeds is not fixed. Call it outside
    `strategy.scope()`, where the rest of the input pipeline is built.
    """
    import tensorflow as tf

    generator = tf.random.Generator.from_seed(config.seed)

    def augment(image, label):
        return spec_augment(image, config, generator.make_seeds(1)[:, 0]), label

    return augment
