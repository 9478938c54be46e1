"""The one feature function: waveform -> fixed-length windows -> mel (or linear) band dB -> magma uint8 image.

Spectrogram generation, prediction, evaluation and the web service all call `waveform_to_images`, and the model
takes the uint8 pixels as they are (scaling and resizing happen inside the model), so a prediction on a raw
file equals the prediction on the PNG rendered for it.

Recipe (defaults in params.py): 22,050 Hz mono; windows of `window_s` seconds every `hop_s` seconds, plus one
window aligned to the end so the tail is covered; a clip shorter than one window is looped (repeated end to
start) until it fills the window, so its length is not visible as padding; 128-band mel power spectrogram
(n_fft 2048, hop 512), or with `Params.scale == "linear"` 128 equal-width linear-frequency bands (the mean
power of the FFT bins in each 86 Hz band) of the same STFT; power_to_db relative to the window's maximum, clipped to [-80, 0] dB and mapped
linearly onto [0, 1]; magma colour map applied as a 256-entry lookup table; low frequencies at the bottom.
"""
from __future__ import annotations

import dataclasses
import functools
import struct
import zlib
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
from PIL import Image

from deepfake_detector.io_utils import atomic_write_bytes
from deepfake_detector.params import Params

# Below this peak mel power a window is digital silence; it renders as the darkest colour, not as noise
# amplified to full scale by the per-window reference.
_SILENT_POWER = 1e-10


@dataclasses.dataclass(frozen=True)
class Window:
    index: int
    start_s: float
    end_s: float


@functools.lru_cache(maxsize=1)
def magma_lut() -> np.ndarray:
    """(256, 3) uint8 RGB table of matplotlib's magma colour map."""
    from matplotlib import colormaps

    colours = colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3]
    return np.round(colours * 255.0).astype(np.uint8)


def window_starts(n_samples: int, params: Params) -> list[int]:
    """Start sample of every window: every hop, plus one flush with the end when the hops miss the tail."""
    size, hop = params.window_samples, params.hop_samples
    if n_samples <= size:
        return [0]
    starts = list(range(0, n_samples - size + 1, hop))
    if starts[-1] + size < n_samples:
        starts.append(n_samples - size)
    return starts


def split_windows(waveform: np.ndarray, params: Params) -> tuple[np.ndarray, list[Window]]:
    """Cut a mono waveform into (n_windows, window_samples) with each window's time span in the source."""
    size = params.window_samples
    duration_s = len(waveform) / params.sample_rate
    if len(waveform) < size:
        # Loop a short clip instead of zero-padding it, so no silent tail reveals how long it was.
        repeats = int(np.ceil(size / max(len(waveform), 1)))
        return np.tile(waveform, repeats)[None, :size], [Window(0, 0.0, duration_s)]
    starts = window_starts(len(waveform), params)
    segments = np.stack([waveform[start:start + size] for start in starts])
    windows = [
        Window(index, start / params.sample_rate, (start + size) / params.sample_rate)
        for index, start in enumerate(starts)
    ]
    return segments, windows


@functools.lru_cache(maxsize=4)
def band_basis(params: Params) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) filter bank that turns FFT-bin power into picture rows, built once per parameter
    set: librosa's mel bank, or for scale "linear" a bank averaging the bins of each equal-width band."""
    if params.scale == "mel":
        return librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels,
                                   fmin=params.fmin, fmax=params.fmax)
    return linear_basis(params)


@functools.lru_cache(maxsize=4)
def _band_blocks(params: Params, rows_per_block: int = 8) -> list[tuple[slice, slice, np.ndarray]]:
    """band_basis cut into blocks of 8 bands, each keeping only the FFT bins its filters touch. Every band is a
    narrow run of bins, so the product over the blocks is band_basis @ power with a fifteenth of the
    multiply-adds (about 4x faster on one window)."""
    basis = band_basis(params)
    blocks = []
    for start in range(0, basis.shape[0], rows_per_block):
        used = np.flatnonzero(basis[start:start + rows_per_block].any(axis=0))
        if len(used):  # a block of empty bands stays zero
            columns = slice(int(used[0]), int(used[-1]) + 1)
            rows = slice(start, min(start + rows_per_block, basis.shape[0]))
            blocks.append((rows, columns, np.ascontiguousarray(basis[rows, columns])))
    return blocks


def linear_basis(params: Params) -> np.ndarray:
    """Row k averages the power of the FFT bins in [fmin + k w, fmin + (k + 1) w), w = (fmax - fmin) / n_mels; the
    last row also takes a bin lying exactly on fmax (Nyquist by default)."""
    frequencies = librosa.fft_frequencies(sr=params.sample_rate, n_fft=params.n_fft)
    width = (params.fmax - params.fmin) / params.n_mels
    rows = np.floor((frequencies - params.fmin) / width).astype(np.int64)
    rows[np.isclose(frequencies, params.fmax)] = params.n_mels - 1
    basis = np.zeros((params.n_mels, len(frequencies)), dtype=np.float32)
    inside = (rows >= 0) & (rows < params.n_mels)
    basis[rows[inside], np.flatnonzero(inside)] = 1.0
    counts = basis.sum(axis=1, keepdims=True)
    if (counts == 0).any():
        raise ValueError(f"n_fft {params.n_fft} is too small for {params.n_mels} linear bands of {width:.1f} Hz: "
                         "some bands hold no FFT bin")
    return basis / counts


@functools.lru_cache(maxsize=4)
def _hann(n_fft: int) -> np.ndarray:
    # librosa.stft's periodic Hann window, cast to float32 so the whole transform stays in single precision.
    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)


def stft(segments: np.ndarray, params: Params) -> np.ndarray:
    """librosa.stft(segments, n_fft, hop_length)'s frames (centred, zero padding, periodic Hann window) in single
    precision: one strided view of every frame and one float32 rfft call, about 4x faster than librosa's float64
    FFT (bench/render_speed.py profiles it). The result is within about 1e-6 of librosa's relative to the peak
    magnitude; bench/render_precision.py measures what that does to pixels and model scores, and
    tests/test_render_fast.py bounds it.
    (..., samples) float32 -> (..., 1 + n_fft // 2, frames) complex64.
    """
    half = params.n_fft // 2
    padded = np.pad(segments.astype(np.float32, copy=False), [(0, 0)] * (segments.ndim - 1) + [(half, half)],
                    mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, params.n_fft, axis=-1)[..., ::params.hop_length, :]
    return scipy.fft.rfft(frames * _hann(params.n_fft), axis=-1).swapaxes(-1, -2)


def band_normalised(segments: np.ndarray, params: Params) -> np.ndarray:
    """(..., samples) -> (..., n_mels, frames) float32 in [0, 1], each window scaled to its own maximum.

    Row 0 is the lowest band (mel or linear, by params.scale). A batch of windows shares one STFT call.
    """
    return band_from_spectrum(stft(segments, params), params)


def band_from_spectrum(spectrum: np.ndarray, params: Params) -> np.ndarray:
    """(..., bins, frames) complex STFT -> (..., n_mels, frames) float32 in [0, 1] (see band_normalised)."""
    # |X|^2 as re^2 + im^2: five times cheaper than squaring np.abs, which takes a square root first.
    bin_power = spectrum.real ** 2 + spectrum.imag ** 2
    power = np.zeros(bin_power.shape[:-2] + (params.n_mels, bin_power.shape[-1]), dtype=np.float32)
    for rows, columns, block in _band_blocks(params):  # (..., n_mels, frames) = band_basis @ bin_power
        power[..., rows, :] = block @ bin_power[..., columns, :]
    windows = power.reshape(-1, *power.shape[-2:])
    normalised = np.zeros(windows.shape, dtype=np.float32)
    for index, window_power in enumerate(windows):
        if float(window_power.max()) <= _SILENT_POWER:
            continue  # digital silence stays at the darkest colour
        decibels = librosa.power_to_db(window_power, ref=np.max, top_db=None)  # max 0 dB
        clipped = np.clip(decibels, -params.top_db, 0.0)
        normalised[index] = (clipped + params.top_db) / params.top_db
    return normalised.reshape(power.shape)


def colourise(normalised: np.ndarray) -> np.ndarray:
    """(n_mels, frames) in [0, 1] -> (n_mels, frames, 3) uint8 magma image with low frequencies at the bottom."""
    indices = np.round(np.clip(normalised, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.take(magma_lut(), np.flipud(indices), axis=0)  # same pixels as lut[indices], several times faster


@functools.lru_cache(maxsize=1)
def _magma_index() -> dict[int, int]:
    """Packed RGB colour -> level index 0..255 of the magma lookup table (first index for a repeated colour)."""
    packed = _pack(magma_lut())
    index = {}
    for level, colour in enumerate(packed.tolist()):
        index.setdefault(colour, level)
    return index


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def picture_levels(picture: np.ndarray) -> np.ndarray:
    """(..., 3) magma pixels -> (...) level indices 0..255 (colourise inverted, rows as they are).

    Pictures rendered by features.colourise hold only lookup-table colours; any other colour (a picture from
    elsewhere) maps to the nearest table colour.
    """
    packed = _pack(picture)
    colours, inverse = np.unique(packed, return_inverse=True)
    table = _magma_index()
    lut = magma_lut().astype(np.float64)
    levels = np.empty(len(colours), dtype=np.int64)
    for position, colour in enumerate(colours.tolist()):
        if colour in table:
            levels[position] = table[colour]
        else:
            rgb = np.array([(colour >> 16) & 255, (colour >> 8) & 255, colour & 255], dtype=np.float64)
            levels[position] = int(np.argmin(((lut - rgb) ** 2).sum(axis=1)))
    return levels[inverse].reshape(packed.shape)


def waveform_to_images(waveform: np.ndarray, params: Params) -> tuple[np.ndarray, list[Window]]:
    """Mono waveform at params.sample_rate -> (n_windows, n_mels, frames, 3) uint8 images and their windows."""
    segments, windows = split_windows(waveform, params)
    images = np.stack([colourise(window) for window in band_normalised(segments, params)])
    return images, windows


def encode_png(image: np.ndarray) -> bytes:
    """A (height, width, 3) uint8 image as an 8-bit RGB PNG: no row filter, zlib level 1.

    Lossless like any PNG. Measured on a 173 x 128 spectrogram (bench/render_speed.py --profile): about 3x
    faster than Pillow at compress_level=1 and a smaller file, since Pillow's adaptive row filters do not help
    these pictures and cost time.
    """
    height, width, _ = image.shape
    rows = np.empty((height, 1 + 3 * width), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None on every row
    rows[:, 1:] = image.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + chunk(b"IEND", b""))


def save_png(image: np.ndarray, path: Path) -> None:
    """Write one uint8 RGB image atomically (temp file + rename)."""
    atomic_write_bytes(Path(path), encode_png(np.ascontiguousarray(image, dtype=np.uint8)))


def load_png(path: Path) -> np.ndarray:
    """Read a spectrogram PNG as the (height, width, 3) uint8 array the model takes."""
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))
