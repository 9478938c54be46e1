"""WaveFake (Frank & Schönherr 2021): `generated_audio/<corpus>_<vocoder>/*_gen.wav` against the real corpora it
vocoded, `LJSpeech-1.1/wavs/*.wav` (English) and `jsut_ver1.1/<subset>/wav/*.wav` (Japanese), all under the root.

attack = the generated folder (ljspeech_melgan, jsut_parallel_wavegan, ...), vocoder = the folder without its
corpus prefix, language en/ja. group = the utterance (LJ001-0001): a real clip and all its vocoded copies share
a split, so no sentence is heard in training and test. No official split."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfake_detector.datasets.common import BONA_FIDE_ATTACK, Problem, audio_by_stem, make_table

NAME = "wavefake"
DESCRIPTION = "WaveFake generated_audio/<corpus>_<vocoder>/ + LJSpeech-1.1/wavs and jsut_ver1.1/*/wav reals"
PRIORITY = 30
GENERATED = "generated_audio"
METADATA = ("vocoder", "language")
# corpus -> (language, folders holding its real clips, relative to the root)
REAL_CORPORA = {"ljspeech": ("en", ["LJSpeech-1.1/wavs"]), "jsut": ("ja", ["jsut_ver1.1/*/wav"])}


def detect(root: Path) -> bool:
    return (root / GENERATED).is_dir()


def corpus_of(folder_name: str) -> str:
    return "jsut" if folder_name.lower().startswith("jsut") else "ljspeech"


def utterance(stem: str) -> str:
    return stem[: -len("_gen")] if stem.endswith("_gen") else stem


def read(root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    rows, problems = [], []
    for folder in sorted(path for path in (root / GENERATED).iterdir() if path.is_dir()):
        corpus = corpus_of(folder.name)
        vocoder = folder.name[len(corpus) + 1:] if folder.name.lower().startswith(corpus) else folder.name
        rows += [{"path": path, "label": "fake", "split": "", "group": f"{corpus}:{utterance(stem)}",
                  "attack": folder.name, "vocoder": vocoder, "language": REAL_CORPORA[corpus][0]}
                 for stem, path in sorted(audio_by_stem(folder, recursive=True).items())]
    for corpus, (language, patterns) in REAL_CORPORA.items():
        folders = [folder for pattern in patterns for folder in sorted(root.glob(pattern))]
        rows += [{"path": path, "label": "real", "split": "", "group": f"{corpus}:{stem}",
                  "attack": BONA_FIDE_ATTACK, "vocoder": "", "language": language}
                 for folder in folders for stem, path in sorted(audio_by_stem(folder).items())]
    if not any(row["label"] == "real" for row in rows):
        problems.append((str(root / "LJSpeech-1.1"), "no real clips: put LJSpeech-1.1/wavs and/or "
                                                      "jsut_ver1.1/<subset>/wav beside generated_audio/"))
    return make_table(rows, METADATA), problems
