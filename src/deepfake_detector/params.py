"""Every feature and model hyperparameter in one frozen dataclass.

The same `Params` is written as `params.json` next to every spectrogram folder and every model, and read back by
prediction, evaluation and the web service, so a model is always fed exactly what it was trained on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

# Label convention used everywhere: index 0 = real (bona fide), index 1 = fake (spoof, the positive class).
CLASS_NAMES = ("real", "fake")

# Folder names users give their classes, mapped onto the two canonical ones.
CLASS_SYNONYMS = {
    "real": "real", "bonafide": "real", "bona_fide": "real", "bona-fide": "real", "human": "real",
    "genuine": "real",
    "fake": "fake", "spoof": "fake", "spoofed": "fake", "ai": "fake", "synthetic": "fake", "deepfake": "fake",
}

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus")

# Frequency axis of the picture: mel bands (the design's default) or equal-width linear-frequency bands, which
# keep the high-frequency detail where vocoder artefacts live (Mueller et al. 2021 found linear front ends
# generalise better than mel).
SCALES = ("mel", "linear")


@dataclasses.dataclass(frozen=True)
class Params:
    # Audio: every file is decoded, downmixed to mono and resampled to this rate.
    sample_rate: int = 22050
    # Mel spectrogram (librosa): 2048-point FFT (~93 ms), hop 512 (~23 ms), 128 mel bands up to Nyquist.
    n_fft: int = 2048
    hop_length: int = 512
    # Rows of the picture: mel bands, or with scale "linear" equal-width bands of fmin..fmax (86 Hz each).
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 11025.0
    # power_to_db(ref=max) then clip to [-top_db, 0] dB and map linearly onto [0, 1] -> 256 magma colours.
    top_db: float = 80.0
    # Fixed time scale: every image covers exactly `window_s` seconds; windows start every `hop_s` seconds.
    window_s: float = 4.0
    hop_s: float = 4.0
    # Input validation: shorter clips are rejected; quieter ones count as silent; bigger ones are refused.
    min_duration_s: float = 0.5
    silence_peak: float = 1e-4
    max_duration_s: float = 3 * 3600.0
    max_file_mb: float = 1024.0
    # Working resolution of the network; images are resized inside the model, so callers feed raw PNG pixels.
    image_height: int = 224
    image_width: int = 224
    class_names: tuple[str, ...] = CLASS_NAMES
    seed: int = 42
    # Frequency axis: "mel" or "linear" (see SCALES); same picture size and colour map either way.
    scale: str = "mel"

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"unknown frequency scale '{self.scale}'; choose one of: {', '.join(SCALES)}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"the picture's band {self.fmin:g}-{self.fmax:g} Hz must lie within 0-"
                             f"{self.sample_rate / 2:g} Hz (half the sample rate) with fmin below fmax")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.sample_rate))

    @property
    def frames_per_window(self) -> int:
        # librosa's centred STFT yields 1 + n // hop frames.
        return 1 + self.window_samples // self.hop_length

    @property
    def png_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of a rendered spectrogram PNG and of the model's input."""
        return (self.n_mels, self.frames_per_window, 3)

    def feature_dict(self) -> dict:
        """The fields that change the rendered pixels; their hash tags every PNG for resumable runs."""
        keys = ("sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "window_s")
        # The scale joins the hash only when it is not mel, so mel folders and models made before the field
        # existed keep their hash (and are not re-rendered).
        keys += ("scale",) if self.scale != "mel" else ()
        return {key: getattr(self, key) for key in keys}

    def feature_hash(self) -> str:
        blob = json.dumps(self.feature_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Params":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}")
        values = dict(values)
        if "class_names" in values:
            values["class_names"] = tuple(values["class_names"])
        return cls(**values)

    def replace(self, **changes) -> "Params":
        return dataclasses.replace(self, **changes)

    def save(self, path: Path) -> None:
        from deepfake_detector.io_utils import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Params":
        return cls.from_dict(json.loads(Path(path).read_text()))


def canonical_class(folder_name: str) -> str:
    """Map a class folder name ('bonafide', 'AI', ...) onto 'real' or 'fake', or raise naming the folder."""
    name = folder_name.strip().lower()
    if name not in CLASS_SYNONYMS:
        raise ValueError(
            f"cannot tell whether class folder '{folder_name}' holds real or fake speech; "
            f"name it one of: {', '.join(sorted(CLASS_SYNONYMS))}"
        )
    return CLASS_SYNONYMS[name]
