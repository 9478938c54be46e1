"""Decode any supported audio file into a mono float32 waveform at the model's sample rate.

Bad input is never silently accepted: every rejection raises `AudioError` whose message is the one-line reason
that batch tools write into their errors file and that the web service returns to the user.

The decoder is hardened for hostile files, because the web service feeds it whatever a client uploads:
- the container is chosen from the file's first bytes (`sniff_format`), never from a name alone, and ffmpeg is
  only ever run with that one demuxer forced and whitelisted and only the `file` protocol allowed, so a playlist
  (HLS, concat, ...) disguised as audio cannot make it open any other file or address;
- the header's sample rate, channel count and length are checked before anything is decoded (`check_declared`):
  a few hundred kB of FLAC can declare gigabytes of samples;
- decoding runs in blocks that are downmixed and resampled as they arrive, so peak memory is the mono 22,050 Hz
  result, whatever the file's rate and channel count, and a stream that turns out longer than declared (or
  declares no length at all) is stopped at the duration limit;
- ffmpeg runs under a wall-clock limit and its output is read in blocks under the same duration cap.
The command-line tools and the service share this one implementation.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
import soxr

from deepfake_detector.params import Params

SUPPORTED_FORMATS = "WAV, FLAC, Ogg (Vorbis/Opus), MP3, M4A/AAC, AIFF, WebM"
# Decoded-size budget: input samples (rate x channels) per second of the duration limit. 192,000 admits 96 kHz
# stereo or 48 kHz 4-channel audio at full length; a 192 kHz 8-channel file may be an eighth of the limit long.
MAX_SAMPLES_PER_SECOND = 192_000
MAX_SAMPLE_RATE = 768_000
BLOCK_FRAMES = 1 << 16
FFPROBE_TIMEOUT_S = 20.0
FFMPEG_TIMEOUT_S = 300.0
# libsndfile reports a length this large (SF_COUNT_MAX) when the header leaves it unknown.
_UNKNOWN_FRAMES = 1 << 62

# Sniffed format -> the ffmpeg demuxer forced for it. No playlist, concat, image or network demuxer is listed.
_DEMUXERS = {".wav": "wav", ".aiff": "aiff", ".flac": "flac", ".ogg": "ogg", ".mp3": "mp3", ".m4a": "mov",
             ".aac": "aac", ".webm": "matroska"}
# Formats libsndfile reads itself (faster, no subprocess); ffmpeg is their fallback.
_LIBSNDFILE_FORMATS = {".wav", ".aiff", ".flac", ".ogg", ".mp3"}
# For content no magic number identifies (e.g. raw ADTS with junk in front): the extension picks the demuxer.
_EXTENSION_FORMATS = {".mp3": ".mp3", ".m4a": ".m4a", ".mp4": ".m4a", ".aac": ".aac", ".opus": ".ogg",
                      ".webm": ".webm"}


class AudioError(Exception):
    """A file that cannot be used; str(error) is a short human-readable reason."""


class AudioTooLarge(AudioError):
    """A file refused by a size limit (duration or decoded size); the service answers 413 for these."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    original_sample_rate: int
    channels: int
    duration_s: float  # after resampling, in seconds


@dataclasses.dataclass(frozen=True)
class StreamInfo:
    """What a file's header declares, before decoding."""
    sample_rate: int
    channels: int
    frames: int | None  # None when the header does not say (legal, e.g. a FLAC written to a pipe)

    @property
    def duration_s(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate


def sniff_format(head: bytes) -> str | None:
    """The format ('.wav', '.mp3', ...) of a file starting with `head` (16 bytes suffice), or None when unknown."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return ".aiff"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:4] == b"OggS":
        return ".ogg"
    if head[:3] == b"ID3":
        return ".mp3"
    if head[4:8] == b"ftyp":  # ISO base media (MP4/M4A); ffmpeg decodes the audio track
        return ".m4a"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM/Matroska
        return ".webm"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG frame sync: layer bits 00 mean ADTS AAC, anything else is MPEG audio layer I-III.
        return ".mp3" if (head[1] >> 1) & 0b11 else ".aac"
    return None


def file_format(path: Path) -> str | None:
    """The format of `path` by content, else by extension for formats without a reliable magic number."""
    with open(path, "rb") as stream:
        sniffed = sniff_format(stream.read(16))
    return sniffed or _EXTENSION_FORMATS.get(Path(path).suffix.lower())


def samples_budget(params: Params) -> float:
    return params.max_duration_s * MAX_SAMPLES_PER_SECOND


def check_declared(info: StreamInfo, params: Params) -> None:
    """Refuse, before decoding, a header whose rate, channels, length or decoded size is out of bounds."""
    if not 0 < info.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"unsupported sample rate {info.sample_rate} Hz")
    if info.channels <= 0:
        raise AudioError("no audio channels")
    if info.frames is None:
        return  # decoding stops at the limits instead
    duration_s = info.frames / info.sample_rate
    if duration_s > params.max_duration_s:
        raise AudioTooLarge(f"too long: {duration_s:.0f} s > maximum {params.max_duration_s:.0f} s")
    decoded = info.frames * info.channels
    if decoded > samples_budget(params):
        raise AudioTooLarge(
            f"decoded size too large: {info.sample_rate} Hz x {info.channels} channels x {duration_s:.0f} s = "
            f"{decoded / 1e6:.1f} M samples > limit {samples_budget(params) / 1e6:.1f} M")


# ---------------------------------------------------------------------------------------------- libsndfile

def _friendly_libsndfile_reason(error: Exception) -> str:
    message = str(error).strip() or type(error).__name__
    # libsndfile's message for content it cannot identify blames the file system; say what is actually wrong.
    if "possibly a pipe" in message or "Format not recognised" in message:
        return "format not recognised or corrupt data"
    return message.split(": ", 1)[-1] if message.startswith("Error opening") else message


@contextlib.contextmanager
def _libsndfile_stream(path: Path) -> Iterator[tuple[StreamInfo, Iterator[np.ndarray]]]:
    with soundfile.SoundFile(str(path)) as sound:
        if sound.frames >= _UNKNOWN_FRAMES:
            # libsndfile cannot read past a block when the length is unknown (its seek fails): ffmpeg decodes it.
            raise RuntimeError("the header does not declare the length")
        info = StreamInfo(int(sound.samplerate), int(sound.channels), int(sound.frames))
        # always_2d gives (frames, channels) blocks for mono and multichannel alike.
        yield info, _libsndfile_blocks(sound)


def _libsndfile_blocks(sound: soundfile.SoundFile) -> Iterator[np.ndarray]:
    # Plain reads until one comes back empty: SoundFile.blocks() trusts the declared length, which may be unknown.
    while True:
        try:
            block = sound.read(BLOCK_FRAMES, dtype="float32", always_2d=True)  # (frames, channels)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioError(f"corrupt audio data ({_friendly_libsndfile_reason(error)})") from error
        if len(block) == 0:
            return
        yield block


# ---------------------------------------------------------------------------------------------- ffmpeg

def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AudioError(f"no decoder for this format: install ffmpeg (apt-get install ffmpeg)")
    return found


def _input_options(demuxer: str) -> list[str]:
    # Only the named file, read through the file protocol, with the one demuxer its content was sniffed as.
    return ["-protocol_whitelist", "file", "-format_whitelist", demuxer, "-f", demuxer]


def _file_url(path: Path) -> str:
    return "file:" + str(Path(path).absolute())


def ffprobe_info(path: Path, demuxer: str) -> StreamInfo:
    """The first audio stream's rate, channels and length according to ffprobe (bounded, whitelisted)."""
    command = [_tool("ffprobe"), "-v", "error", *_input_options(demuxer), "-select_streams", "a:0",
               "-show_entries", "stream=sample_rate,channels:format=duration", "-of", "json", _file_url(path)]
    try:
        probe = subprocess.run(command, capture_output=True, text=True, check=False, timeout=FFPROBE_TIMEOUT_S,
                               stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise AudioError(f"ffprobe took longer than {FFPROBE_TIMEOUT_S:g} s") from error
    try:
        report = json.loads(probe.stdout or "{}")
        stream = report["streams"][0]
        sample_rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    except (ValueError, KeyError, IndexError, TypeError) as error:
        lines = probe.stderr.strip().splitlines()
        raise AudioError("no audio stream found" + (f" ({lines[-1][:200]})" if lines else "")) from error
    try:
        frames = round(float(report["format"]["duration"]) * sample_rate)
    except (ValueError, KeyError, TypeError):
        frames = None  # unknown: the decoding cap applies
    return StreamInfo(sample_rate, channels, frames)


@contextlib.contextmanager
def _ffmpeg_stream(path: Path, demuxer: str, params: Params) -> Iterator[tuple[StreamInfo, Iterator[np.ndarray]]]:
    info = ffprobe_info(path, demuxer)
    check_declared(info, params)
    blocks = _ffmpeg_blocks(path, demuxer, info, params)  # ffmpeg starts only when the blocks are read
    try:
        yield info, blocks
    finally:
        blocks.close()


def _ffmpeg_blocks(path: Path, demuxer: str, info: StreamInfo, params: Params) -> Iterator[np.ndarray]:
    """ffmpeg's float32 output in (frames, channels) blocks, read as it comes, under a wall-clock limit."""
    # -t caps what ffmpeg decodes a little past the limit, so "too long" is still detected, not truncated away.
    command = [_tool("ffmpeg"), "-nostdin", "-v", "error", *_input_options(demuxer),
               "-t", f"{params.max_duration_s + 1:g}", "-i", _file_url(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
               "-ac", str(info.channels), "-ar", str(info.sample_rate), "-f", "f32le", "-acodec", "pcm_f32le",
               "pipe:1"]
    frame_bytes = 4 * info.channels
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        watchdog = threading.Timer(FFMPEG_TIMEOUT_S, process.kill)
        watchdog.start()
        try:
            pending = b""
            while chunk := process.stdout.read(BLOCK_FRAMES * frame_bytes):
                pending += chunk
                usable = len(pending) - len(pending) % frame_bytes
                if usable:
                    yield np.frombuffer(pending[:usable], dtype="<f4").reshape(-1, info.channels)
                    pending = pending[usable:]
            process.wait()
            if not watchdog.is_alive():  # a Timer that has fired is no longer alive
                raise AudioError(f"ffmpeg took longer than {FFMPEG_TIMEOUT_S:g} s to decode the file")
            if process.returncode != 0:
                stderr.seek(max(0, os.fstat(stderr.fileno()).st_size - 4096))
                lines = stderr.read().decode(errors="replace").strip().splitlines()
                raise AudioError(f"ffmpeg could not decode the file: {lines[-1] if lines else 'unknown error'}")
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
            process.stdout.close()
            process.wait()


# ---------------------------------------------------------------------------------------------- decoding

@contextlib.contextmanager
def open_stream(path: Path, params: Params) -> Iterator[tuple[StreamInfo, Iterator[np.ndarray]]]:
    """(declared info, iterator of float32 (frames, channels) blocks) for `path`; the header is already checked.

    libsndfile reads what it can; anything else, and what libsndfile refuses, goes to ffmpeg with the sniffed
    format's demuxer forced. Content with no known format never reaches ffmpeg.
    """
    path = Path(path)
    audio_format = file_format(path)
    libsndfile_reason = None
    if audio_format is None or audio_format in _LIBSNDFILE_FORMATS:
        with contextlib.ExitStack() as stack:
            try:
                info, blocks = stack.enter_context(_libsndfile_stream(path))
            except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
                libsndfile_reason = _friendly_libsndfile_reason(error)
            else:
                check_declared(info, params)
                yield info, blocks
                return
        if audio_format is None:
            raise AudioError(f"not a readable audio file ({libsndfile_reason}; supported: {SUPPORTED_FORMATS})")
    try:
        with _ffmpeg_stream(path, _DEMUXERS[audio_format], params) as opened:
            yield opened
    except AudioError as error:
        if libsndfile_reason is None or isinstance(error, AudioTooLarge):
            raise
        raise AudioError(f"not a readable audio file ({libsndfile_reason})") from error


def probe(path: Path, params: Params) -> StreamInfo:
    """The header's declared stream info, checked against the limits (AudioTooLarge / AudioError)."""
    with open_stream(path, params) as (info, _):
        return info


def _mono_resampled(info: StreamInfo, blocks: Iterator[np.ndarray], params: Params) -> np.ndarray:
    """Downmix and resample block by block; stop with AudioTooLarge once past the duration or decoded-size cap."""
    max_frames = params.max_duration_s * info.sample_rate
    max_frames = min(max_frames, samples_budget(params) / info.channels)
    resampler = (soxr.ResampleStream(info.sample_rate, params.sample_rate, 1, dtype="float32", quality="HQ")
                 if info.sample_rate != params.sample_rate else None)
    parts, frames_read = [], 0
    for block in blocks:
        frames_read += len(block)
        if frames_read > max_frames:
            raise AudioTooLarge(f"too long: more than {max_frames / info.sample_rate:.0f} s of "
                                f"{info.sample_rate} Hz x {info.channels} channels (maximum "
                                f"{params.max_duration_s:.0f} s)")
        mono = np.ascontiguousarray(block.mean(axis=1), dtype=np.float32)
        parts.append(resampler.resample_chunk(mono, last=False) if resampler else mono)
    if resampler:
        parts.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def decode(path: Path, params: Params | None = None) -> tuple[np.ndarray, int]:
    """Raw decode of a trusted file: (samples, channels) float32 array and its native sample rate."""
    with open_stream(Path(path), params or Params()) as (info, blocks):
        parts = [np.array(block, dtype=np.float32) for block in blocks]
    samples = np.concatenate(parts) if parts else np.zeros((0, info.channels), dtype=np.float32)
    return samples, info.sample_rate


def to_mono_resampled(samples: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Average the channels and resample with soxr (high quality), returning float32 mono."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sample_rate != target_rate:
        mono = soxr.resample(mono, sample_rate, target_rate, quality="HQ").astype(np.float32)
    return mono


def check_waveform(waveform: np.ndarray, params: Params) -> None:
    """Raise AudioError when a decoded waveform is unusable (non-finite, silent, too short, too long)."""
    duration_s = len(waveform) / params.sample_rate
    if len(waveform) == 0:
        raise AudioError("no audio samples (empty stream)")
    if not np.all(np.isfinite(waveform)):
        raise AudioError("audio contains NaN or infinite samples")
    if duration_s < params.min_duration_s:
        raise AudioError(f"too short: {duration_s:.3f} s < minimum {params.min_duration_s} s")
    if duration_s > params.max_duration_s:
        raise AudioTooLarge(f"too long: {duration_s:.0f} s > maximum {params.max_duration_s:.0f} s")
    if float(np.max(np.abs(waveform))) < params.silence_peak:
        raise AudioError(f"silent: peak level below {params.silence_peak:g}")


def check_regular_file(path: Path, max_file_mb: float) -> int:
    """The size of `path`; AudioError when it is missing, not a regular file (FIFO, device...), empty or too big."""
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        raise AudioError("file not found" + (" (dangling symbolic link)" if os.path.islink(path) else "")) from error
    except OSError as error:
        raise AudioError(f"unreadable: {error.strerror or error}") from error
    if not stat.S_ISREG(status.st_mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(status.st_mode) else \
            "a folder" if stat.S_ISDIR(status.st_mode) else "a device or socket"
        raise AudioError(f"not a regular file: {kind}")
    if status.st_size == 0:
        raise AudioError("empty file (0 bytes)")
    if status.st_size > max_file_mb * 1024 * 1024:
        raise AudioError(f"file too large: {status.st_size / 2**20:.0f} MB > {max_file_mb:.0f} MB")
    return status.st_size


def load_audio(path: Path, params: Params) -> tuple[np.ndarray, AudioInfo]:
    """Decode, downmix and resample `path` in bounded memory; validate it; return (waveform, info)."""
    path = Path(path)
    check_regular_file(path, params.max_file_mb)
    with open_stream(path, params) as (info, blocks):
        waveform = _mono_resampled(info, blocks, params)
    check_waveform(waveform, params)
    return waveform, AudioInfo(info.sample_rate, info.channels, len(waveform) / params.sample_rate)
