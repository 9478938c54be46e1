"""Generalisation benchmark: does a detector catch fake families it was not trained on, on data it was not
trained on? Rows are recipes; every number is a mean +- sd over seeds.

Rows: every combination of corpus (`corpora`, e.g. v1 and v2), model (`models`), augmentation off/on
(`augment_rows`), front end (`scales`: mel, linear; `fmax`, the top of the picture's band, applies to all), pair
loss (`pair_losses`: none, contrastive) and training fakes (`fake_sets`: all, or `copies`: only the copy-syntheses
of real clips, Wang & Yamagishi's setting, so that nothing but the vocoder's trace tells a fake from its source;
test sets are the same for both); `ema` (a moving average of the weights) applies to all. Protocol,
per corpus, front end and seed (`seeds`, each changing the split, the subsamples, the weights and augmentation):

1. The corpus (`demo_manifest.csv` names each fake's `system_family`; copy-syntheses name their `source_file`)
   is rendered ONCE per front end into the work folder with `spectrograms.generate` (resumable) and split per
   seed by `groups.csv` with `splits.make_splits`, pair ids included (`splits.read_pairs_manifest`). Every
   training set below is a split table over those same PNGs (`TrainingConfig.splits_csv`).
2. Main run per row: train on every family; in-domain EER on the test split.
3. Leave-one-family-out, over the held-out families of the corpus contract (HELD_OUT_ORDER): each neural
   vocoder (`*-vocoded`) on its own, kokoro, hibari, piper, the DSP vocoders (`*-copysynth`) together and the
   rule-based TTS (RULE_BASED) together. A family missing from a corpus is skipped and the report says so. Per
   family: train without its fakes in train AND val, on a seeded per-class subsample of the train files, and test
   on ALL of its clips (none was seen in training) plus the test-split reals. The mean over families is the
   row's held-out EER, the only number that chooses the recommended row.
3b. Leave-one-real-source-out, when the manifest names each clip's `source` (corpus v2): per real source (game,
   IVR prompts, readers, ...), train without its real clips AND their copy-syntheses, and test its real clips and
   copies against the test-split fakes of every other source. It asks what crossdomain asks, without touching
   crossdomain: is a recording from a real source never seen in training called real? The mean is reported
   beside the held-out-family mean, with the share of the held-out source's real clips called real at the
   run's validation threshold; it does not choose the row.
4. Cross-dataset: each main model scores `../shared/data/for-norm-mini` (testing split), `tts-mixed` and
   `crossdomain`. These are EVALUATION ONLY: nothing is trained, tuned, thresholded or chosen on them. Pictures
   are rendered once per file and front end (cached on disk) and scored by every model.
5. Robustness: the corpus' test split after each fixed corruption of `augment.corrupt`; EER per corruption.
6. Calibration: how far the test EER threshold moved from the validation threshold (from training).

Finished training runs are reused when the benchmark is run again with the same settings (a fingerprint of the
run's configuration and split table), so a killed run resumes where it stopped.
Outputs: `<out>/generalisation.md` (tables and settings), `generalisation.png` (grouped bars), `generalisation.json`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from threadpoolctl import threadpool_limits
from tqdm import tqdm

# Modules that import TensorFlow (training, inference, evaluation, model_store) are imported where they are used,
# so `--help` and a bad corpus folder answer before TensorFlow starts.
from deepfake_detector.data import audio, augment, features, spectrograms, splits
from deepfake_detector.report import metrics
from deepfake_detector.io_utils import atomic_path, atomic_write_text, sha256_file
from deepfake_detector.params import Params

CORPUS_MANIFEST = splits.CORPUS_MANIFEST
GROUPS_CSV = "groups.csv"
# Held-out families of the corpus contract (issue 12). Neural vocoders are held out one by one.
VOCODED_SUFFIX = "-vocoded"
DSP_VOCODERS = "dsp-vocoders"  # every *-copysynth family (WORLD, Griffin-Lim, LPC) together
RULE_BASED = "rule-based"
RULE_BASED_SYSTEMS = ("espeak-ng", "flite", "festival", "mbrola", "pico")
NEURAL_TTS = ("kokoro", "hibari", "piper")
HELD_OUT_ORDER = (f"*{VOCODED_SUFFIX}", *NEURAL_TTS, DSP_VOCODERS, RULE_BASED)
HELD_OUT_MEAN = "held-out mean"
HELD_OUT_SOURCE_MEAN = "held-out source mean"
MIN_SOURCE_FILES = 10  # a real source with fewer real clips is not held out on its own (its EER would be noise)
# Evaluation-only data sets under the shared data folder: (name, manifest, split or None for all rows).
CROSS_DATASETS = (("for-norm-mini", "for-norm-mini/manifest.csv", "test"),
                  ("tts-mixed", "tts-mixed/manifest.csv", None),
                  ("crossdomain", "crossdomain/manifest.csv", None))
CROSS_NAMES = tuple(name for name, _, _ in CROSS_DATASETS)
# Shown per row, in this order, in the table and the plot.
EER_COLUMNS = ("in-domain", HELD_OUT_MEAN, HELD_OUT_SOURCE_MEAN, *CROSS_NAMES, *augment.CORRUPTIONS)
# Target of issue 12 for the recommended row (chosen by mean held-out-family EER, never by crossdomain).
TARGETS = {"crossdomain_eer": 0.20}
# Training fakes of a row: every fake, or only the copy-syntheses of real clips (fakes with a pair id).
FAKE_SETS = ("all", "copies")


class BenchmarkError(Exception):
    """The benchmark cannot run; str(error) says why in one line."""


@dataclasses.dataclass(frozen=True)
class Row:
    corpus: str
    model_name: str
    augmented: bool
    scale: str = "mel"
    pair_loss: str = "none"
    fmax: float | None = None  # top of the picture's band in Hz; None = Nyquist (the Params default)
    ema: float | None = None  # momentum of the weight average (TrainingConfig.ema_momentum); None = off
    fakes: str = "all"  # training fakes: "all", or "copies" (copy-syntheses only; see FAKE_SETS)

    @property
    def front_end(self) -> str:
        return front_end_name(self.scale, self.fmax)

    @property
    def training_tags(self) -> list[str]:
        return ([f"ema{self.ema:g}"] if self.ema is not None else []) + \
            (["copies-only"] if self.fakes == "copies" else [])

    @property
    def name(self) -> str:
        return " ".join([self.corpus, self.model_name + ("+aug" if self.augmented else ""), self.front_end,
                         "pairs:" + self.pair_loss if self.pair_loss != "none" else "bce", *self.training_tags])

    @property
    def stem(self) -> str:
        return "_".join([self.corpus, self.model_name, "aug" if self.augmented else "noaug", self.front_end,
                         self.pair_loss, *self.training_tags])


def front_end_name(scale: str, fmax: float | None) -> str:
    """'mel', or 'mel-5500hz' for a picture whose band stops at 5.5 kHz; it also names the work folder."""
    return scale if fmax is None else f"{scale}-{fmax:g}hz"


def front_end_params(scale: str, fmax: float | None) -> Params:
    return Params(scale=scale) if fmax is None else Params(scale=scale, fmax=fmax)


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
    # (name, folder) per corpus; empty means ("demo", data_clean), or the tiny synthetic corpus with --quick.
    corpora: tuple[tuple[str, Path], ...] = ()
    work_dir: Path = Path("benchmarks/work")
    out_dir: Path = Path("benchmarks")
    shared_data: Path = Path("../shared/data")
    models: tuple[str, ...] = ("compact_cmn",)  # registry names
    augment_rows: tuple[bool, ...] = (False, True)  # each model without and with augmentation
    scales: tuple[str, ...] = ("mel", "linear")
    fmax: float | None = None  # every front end's top frequency in Hz; None = Nyquist
    ema: float | None = None  # every run's weight-average momentum; None = the last step's weights
    pair_losses: tuple[str, ...] = ("none", "contrastive")
    fake_sets: tuple[str, ...] = ("all",)  # of FAKE_SETS
    seeds: tuple[int, ...] = (42, 7, 1)
    epochs: int = 6  # main runs (early stopping on validation AUC may end sooner)
    loso_epochs: int = 4
    loso_train_fraction: float = 0.5  # seeded per-class share of the train files in each held-out run
    loso_families: int | None = None  # hold out only the first N families present; None = all
    source_folds: int | None = None  # hold out only the first N real sources (by name); None = all, 0 = none
    augment: tuple[str, ...] = augment.AUGMENTATION_NAMES
    augment_copies: int = 1
    eval_files_per_class: int | None = None  # seeded cap per class on each evaluation set; None = all files
    jobs: int = 2
    devices: int = 1
    batch_size: int = 32
    patience: int = 3
    quick: bool = False

    def augment_config(self, seed: int) -> augment.AugmentConfig:
        return augment.AugmentConfig(augmentations=self.augment, copies=self.augment_copies, seed=seed)

    def rows(self) -> list[Row]:
        return [Row(corpus, model, augmented, scale, pair_loss, self.fmax, self.ema, fakes)
                for (corpus, _), model, augmented, scale, pair_loss, fakes
                in itertools.product(self.corpora, self.models, self.augment_rows, self.scales, self.pair_losses,
                                     self.fake_sets)]

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["corpora"] = [[name, str(path)] for name, path in self.corpora]
        return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


def resolve_settings(settings: BenchmarkSettings) -> BenchmarkSettings:
    """Fill in the default corpus, and for --quick the CI-sized budgets: 1 epoch, the first seed, 1 held-out
    family, few evaluation files; without --corpus, --quick runs on a tiny synthetic corpus made on the fly."""
    if not settings.corpora:
        corpus = (("tiny", Path(settings.work_dir) / "tiny_corpus") if settings.quick
                  else ("demo", Path("data_clean")))
        settings = dataclasses.replace(settings, corpora=(corpus,))
    if settings.quick:
        settings = dataclasses.replace(settings, epochs=1, loso_epochs=1, loso_families=1, augment_copies=1,
                                       source_folds=1 if settings.source_folds is None else settings.source_folds,
                                       seeds=settings.seeds[:1], eval_files_per_class=6)
    names = [name for name, _ in settings.corpora]
    if len(set(names)) != len(names):
        raise BenchmarkError(f"corpus names must differ, got {names}")
    return settings


# ---------------------------------------------------------------------------------------------- corpus

def family_of(system_family: str) -> str:
    """The held-out family of a fake's system family: DSP vocoders and rule-based TTS are held out together;
    neural vocoders, kokoro, hibari, piper and any other family by their own name."""
    if system_family.endswith("-copysynth"):
        return DSP_VOCODERS
    if system_family in RULE_BASED_SYSTEMS:
        return RULE_BASED
    return system_family


def make_tiny_corpus(folder: Path, clips_per_family: int = 6, seed: int = 0) -> Path:
    """A corpus-v2-shaped folder of 1 s synthetic clips for smoke runs: 'real' are vibrato voices with noise;
    the TTS fakes are differently shaped buzzes; the copy-synthesis fakes ('-vocoded', '-copysynth') are a real
    clip with a buzz added, in its group and naming it as source_file. The reals alternate between two real
    sources, 'tiny-a' and 'tiny-b', which their copies inherit. Same manifest and groups.csv columns as the demo
    corpus."""
    folder = Path(folder)
    tts, copies = ("espeak-ng", "piper"), ("hifigan-onnx-fp32-vocoded", "world-copysynth")
    rng = np.random.default_rng(seed)
    sample_rate, t = 16000, np.arange(16000) / 16000
    reals = []
    for index in range(clips_per_family * (len(tts) + len(copies))):
        f0 = rng.uniform(100, 220)
        vibrato = np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t))
        reals.append(("real", "human", vibrato + 0.05 * rng.standard_normal(len(t)), f"real:{index}", "",
                      "tiny-a" if index % 2 == 0 else "tiny-b"))
    rows = list(reals)
    for number, system in enumerate(tts + copies):
        for index in range(clips_per_family):
            phase = 2 * np.pi * rng.uniform(100, 220) * t
            buzz = np.sign(np.sin(phase)) * 0.3 + np.sin((number + 2) * phase)
            if system in copies:  # a copy of real clip `source`, distinct per copy family
                source = index + clips_per_family * (number - len(tts))
                _, _, waveform, group, _, real_source = reals[source]
                rows.append(("fake", system, waveform + 0.5 * buzz, group, f"real/human_{source:03d}.flac",
                             real_source))
            else:
                rows.append(("fake", system, buzz, f"{system}:{index}", "", system))
    manifest = []
    for index, (label, system, waveform, group, source_file, source) in enumerate(rows):
        file = f"{label}/{system}_{index:03d}.flac"
        (folder / label).mkdir(parents=True, exist_ok=True)
        soundfile.write(str(folder / file), (0.3 * waveform / np.abs(waveform).max()).astype(np.float32),
                        sample_rate)
        manifest.append({"file": file, "label": label, "system_family": system, "group": group,
                         "source_file": source_file, "source": source})
    manifest = pd.DataFrame(manifest)
    atomic_write_text(folder / CORPUS_MANIFEST, manifest.to_csv(index=False))
    atomic_write_text(folder / GROUPS_CSV, manifest.rename(columns={"file": "path"})[["path", "group"]]
                      .to_csv(index=False))
    return folder


def render_corpus(settings: BenchmarkSettings, name: str, corpus: Path, params: Params) -> Path:
    """Render a corpus once per front end into <work>/<name>/<front end>/spectrograms (resumable)."""
    corpus = Path(corpus)
    if settings.quick and name == "tiny" and not (corpus / CORPUS_MANIFEST).is_file():
        make_tiny_corpus(corpus, seed=settings.seeds[0])
    for needed in (CORPUS_MANIFEST, GROUPS_CSV):
        if not (corpus / needed).is_file():
            raise BenchmarkError(f"{corpus / needed} is missing: build the demo corpus with "
                                 "scripts/make_demo_data.py (or use --quick)")
    data_dir = Path(settings.work_dir) / name / front_end_name(params.scale, settings.fmax) / "spectrograms"
    try:
        spectrograms.generate(corpus, data_dir, params, jobs=settings.jobs)
    except spectrograms.SpectrogramError as error:
        raise BenchmarkError(str(error)) from error
    return data_dir


def split_corpus(corpus: Path, data_dir: Path, seed: int, out_csv: Path) -> pd.DataFrame:
    """Split the rendered corpus for one seed (groups and, when the manifest names copy sources, pair ids),
    write the table to `out_csv` and return it with a `family` column ('' for real clips) and a `source` column
    (the manifest's real source of a clip or copy, else the fake's family; '' when the manifest has none)."""
    corpus = Path(corpus)
    manifest = pd.read_csv(Path(data_dir) / "manifest.csv", dtype={"official_split": str, "source_sha256": str})
    pairs_csv = splits.default_pairs_manifest(corpus / GROUPS_CSV)
    try:
        table, _ = splits.make_splits(manifest, seed=seed, groups_table=splits.read_groups_csv(corpus / GROUPS_CSV),
                                      pairs_table=None if pairs_csv is None else splits.read_pairs_manifest(pairs_csv))
    except splits.SplitError as error:
        raise BenchmarkError(str(error)) from error
    corpus_manifest = pd.read_csv(corpus / CORPUS_MANIFEST, dtype=str, keep_default_na=False)
    paths = [str((corpus / file).resolve()) for file in corpus_manifest["file"]]
    family = {path: family_of(system) if label == "fake" else ""
              for path, label, system in zip(paths, corpus_manifest["label"], corpus_manifest["system_family"])}
    source = dict(zip(paths, corpus_manifest["source"] if "source" in corpus_manifest.columns else [""] * len(paths)))
    unknown = sorted(set(table["source_path"]) - set(family))
    if unknown:
        raise BenchmarkError(f"{len(unknown)} rendered file(s) are not in {CORPUS_MANIFEST}, e.g. {unknown[0]}")
    write_split_csv(table, out_csv)
    return table.assign(family=table["source_path"].map(family), source=table["source_path"].map(source))


def held_out_families(table: pd.DataFrame, limit: int | None) -> tuple[list[str], list[str]]:
    """(families to hold out, in HELD_OUT_ORDER, at most `limit`; contract families this corpus lacks)."""
    present = set(table.loc[table["class"] == "fake", "family"])
    vocoded = sorted(name for name in present if name.endswith(VOCODED_SUFFIX))
    ordered = vocoded + [name for name in HELD_OUT_ORDER[1:] if name in present]
    missing = ([] if vocoded else [HELD_OUT_ORDER[0]]) + [name for name in HELD_OUT_ORDER[1:] if name not in present]
    return ordered[:limit], missing


def held_out_sources(table: pd.DataFrame, min_files: int | None = None) -> list[str]:
    """Real sources that may be held out one at a time, by name: those with at least `min_files` (default
    MIN_SOURCE_FILES) real files, and only when another real source is left to train on."""
    reals = table[(table["class"] == "real") & (table["source"] != "")].drop_duplicates("source_path")
    counts = reals["source"].value_counts()
    if len(counts) < 2:
        return []
    return sorted(counts.index[counts >= (MIN_SOURCE_FILES if min_files is None else min_files)])


def training_problem(table: pd.DataFrame) -> str | None:
    """Why a split table cannot train (a class missing from train or val), or None when it can."""
    from deepfake_detector.model.dataset import DataError, check_trainable

    try:
        check_trainable(table)
    except DataError as error:
        return str(error)
    return None


def source_folds(table: pd.DataFrame, limit: int | None, train_fraction: float, seed: int,
                 folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Write the split table of each held-out real source, the first `limit` that can train, into `folder`:
    ({source: split csv}, {source: why it was not held out}). A source whose removal leaves the train or val
    split without a class (a seed's split may put all val reals in one source) is skipped with the reason."""
    written, skipped = {}, {}
    for source in held_out_sources(table):
        if limit is not None and len(written) >= limit:
            break
        fold = source_fold_table(table, source, train_fraction, seed)
        problem = training_problem(fold)
        if problem:
            skipped[source] = problem
        else:
            written[source] = write_split_csv(fold, Path(folder) / f"{source}.csv")
    return written, skipped


def source_fold_table(table: pd.DataFrame, source: str, train_fraction: float, seed: int) -> pd.DataFrame:
    """Split table for holding out real source `source`: its real clips and their copies leave train and val and
    ALL of them are tested, beside the test-split fakes of every other source; train is then subsampled per
    class."""
    held_out = table["source"] == source
    train = subsample_files(table[(table["split"] == "train") & ~held_out], train_fraction, seed)
    val = table[(table["split"] == "val") & ~held_out]
    test_fake = table[(table["split"] == "test") & (table["class"] == "fake") & ~held_out]
    test = pd.concat([table[held_out].assign(split="test"), test_fake])
    return pd.concat([train, val, test], ignore_index=True)


def subsample_files(table: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Keep a seeded `fraction` of the source files of each class (all windows of a kept file)."""
    if fraction >= 1.0:
        return table
    rng = np.random.default_rng(seed)
    kept = []
    for _, files in table.drop_duplicates("source_path").groupby("class", sort=True):
        count = max(1, int(round(fraction * len(files))))
        kept += list(files["source_path"].iloc[np.sort(rng.permutation(len(files))[:count])])
    return table[table["source_path"].isin(kept)]


def loso_table(table: pd.DataFrame, family: str, train_fraction: float, seed: int) -> pd.DataFrame:
    """Split table for holding out `family`: its fakes leave train and val and ALL of them form the test fakes,
    beside the test-split reals; train is then subsampled per class."""
    held_out = (table["class"] == "fake") & (table["family"] == family)
    train = subsample_files(table[(table["split"] == "train") & ~held_out], train_fraction, seed)
    val = table[(table["split"] == "val") & ~held_out]
    test_real = table[(table["split"] == "test") & (table["class"] == "real")]
    test = pd.concat([test_real, table[held_out].assign(split="test")])
    return pd.concat([train, val, test], ignore_index=True)


def copies_only(table: pd.DataFrame) -> pd.DataFrame:
    """The table with only copy-syntheses (fakes in a pair set) left as train and val fakes; test unchanged."""
    pair = table[splits.PAIR_COLUMN].fillna("") if splits.PAIR_COLUMN in table.columns else ""
    dropped = (table["split"] != "test") & (table["class"] == "fake") & (pair == "")
    return table[~dropped].reset_index(drop=True)


def copies_only_variant(folder: Path, split_csv: Path, folds: dict[str, Path], source_csvs: dict[str, Path]
                        ) -> tuple[Path | None, dict[str, Path], dict[str, Path], list[str]]:
    """`copies_only` of the main split and of every fold, written under `folder`: (main csv or None when it
    cannot train, family folds, source folds, notes on the folds dropped because they cannot train)."""
    notes = []

    def variant(csv: Path, name: str) -> Path | None:
        table = copies_only(pd.read_csv(csv, dtype={splits.PAIR_COLUMN: str}, keep_default_na=False))
        problem = training_problem(table)
        if problem:
            notes.append(f"copies only, {name}: not run ({problem})")
            return None
        return write_split_csv(table, Path(folder) / Path(csv).parent.name / Path(csv).name)

    main = variant(split_csv, "main run")
    kept_folds = {family: variant(csv, f"without {family}") for family, csv in folds.items()}
    kept_sources = {source: variant(csv, f"without real source {source}") for source, csv in source_csvs.items()}
    return (main, {key: csv for key, csv in kept_folds.items() if csv},
            {key: csv for key, csv in kept_sources.items() if csv}, notes)


def write_split_csv(table: pd.DataFrame, path: Path) -> Path:
    columns = splits.SPLITS_COLUMNS + ([splits.PAIR_COLUMN] if splits.PAIR_COLUMN in table.columns else [])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(path)) as tmp:
        table[columns].to_csv(tmp, index=False)
    return Path(path)


# ---------------------------------------------------------------------------------------------- evaluation sets

@dataclasses.dataclass
class EvalSet:
    """Rendered pictures of one evaluation set, or the reason it was skipped."""

    name: str
    labels: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))  # (n_files,) 1 = fake
    images: np.ndarray | None = None  # (n_windows, n_mels, frames, 3) uint8
    file_index: np.ndarray | None = None  # (n_windows,) the file each picture belongs to
    failed: int = 0
    skipped: str = ""


def cap_per_class(table: pd.DataFrame, per_class: int | None, seed: int) -> pd.DataFrame:
    if per_class is None:
        return table
    picked = [part.sample(min(per_class, len(part)), random_state=seed) for _, part in table.groupby("label")]
    return pd.concat(picked).sort_index()


def _render_waveform(path: str, params: Params, corruption: str | None) -> np.ndarray:
    waveform, _ = audio.load_audio(Path(path), params)
    if corruption is not None:
        waveform = augment.corrupt(waveform, params.sample_rate, corruption)
    return features.waveform_to_images(waveform, params)[0]  # (n_windows, n_mels, frames, 3)


def render_eval_set(name: str, paths: list[str], labels: np.ndarray, params: Params, cache_dir: Path,
                    corruption: str | None = None) -> EvalSet:
    """Pictures of every file (after `corruption`), rendered once and cached in `cache_dir` as .npz."""
    key = hashlib.sha256(json.dumps([paths, labels.tolist(), params.feature_hash(), corruption]).encode())
    cache = Path(cache_dir) / f"{name}_{key.hexdigest()[:12]}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            return EvalSet(name, saved["labels"], saved["images"], saved["file_index"], int(saved["failed"]))
    pictures, kept_labels, file_index, failed = [], [], [], 0
    with threadpool_limits(1):  # small matrices: one BLAS thread is faster (see spectrograms.py)
        for path, label in tqdm(list(zip(paths, labels)), desc=f"rendering {name}", unit="file"):
            try:
                images = _render_waveform(path, params, corruption)
            except audio.AudioError:
                failed += 1
                continue
            file_index += [len(kept_labels)] * len(images)
            kept_labels.append(label)
            pictures.append(images)
    if not pictures:
        return EvalSet(name, failed=failed, skipped=f"none of the {len(paths)} files could be rendered")
    result = EvalSet(name, np.asarray(kept_labels, np.int64), np.concatenate(pictures),
                     np.asarray(file_index, np.int64), failed)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, labels=result.labels, images=result.images, file_index=result.file_index,
                     failed=failed)
    return result


def cross_dataset_sets(settings: BenchmarkSettings, params: Params) -> list[EvalSet]:
    """The evaluation-only data sets, rendered (or skipped with a reason when they are absent)."""
    from deepfake_detector.report.evaluation import EvaluationError, load_labelled_data

    cache_dir = Path(settings.work_dir) / "eval_cache"
    sets = []
    for name, manifest, split in CROSS_DATASETS:
        path = Path(settings.shared_data) / manifest
        if not path.is_file():
            sets.append(EvalSet(name, skipped=f"{path} not found (the shared data folder is absent)"))
            continue
        try:
            table = cap_per_class(load_labelled_data(path, split), settings.eval_files_per_class,
                                  settings.seeds[0])
        except EvaluationError as error:
            sets.append(EvalSet(name, skipped=str(error)))
            continue
        labels = (table["label"] == "fake").to_numpy(np.int64)
        sets.append(render_eval_set(name, list(table["path"]), labels, params, cache_dir))
    return sets


def corrupted_test_sets(settings: BenchmarkSettings, table: pd.DataFrame, params: Params) -> list[EvalSet]:
    """The demo corpus' test split after each fixed corruption."""
    files = table[table["split"] == "test"].drop_duplicates("source_path")
    labels = (files["class"] == "fake").to_numpy(np.int64)
    sets = []
    for corruption in augment.CORRUPTIONS:
        try:
            sets.append(render_eval_set(corruption, list(files["source_path"]), labels, params,
                                        Path(settings.work_dir) / "eval_cache", corruption))
        except (augment.CodecUnavailable, RuntimeError) as error:
            sets.append(EvalSet(corruption, skipped=str(error)))
    return sets


def score_eval_set(detector, eval_set: EvalSet, batch_size: int) -> dict:
    """EER and ROC AUC of one model on one set, from per-file scores aggregated as the model's metadata says."""
    if eval_set.skipped:
        return {"skipped": eval_set.skipped}
    from deepfake_detector.model import inference

    window_raw = inference.raw_scores(detector, eval_set.images, batch_size)
    rule = detector.metadata.get("aggregate", "mean")
    # Aggregated on the raw scale, then calibrated: the same file score as predict and training give.
    file_scores = (pd.Series(window_raw).groupby(eval_set.file_index, sort=True)
                   .agg(lambda scores: inference.file_score(detector, scores.to_numpy(), rule)).to_numpy())
    result = {"n_real": int((eval_set.labels == 0).sum()), "n_fake": int((eval_set.labels == 1).sum()),
              "n_failed": eval_set.failed}
    if result["n_real"] == 0 or result["n_fake"] == 0:
        return {**result, "skipped": "needs both real and fake files"}
    eer, _ = metrics.compute_eer(eval_set.labels, file_scores)
    return {**result, "eer": eer, "roc_auc": metrics.roc_auc(eval_set.labels, file_scores)}


# ---------------------------------------------------------------------------------------------- training runs

def _fingerprint(config) -> str:
    """Everything that decides a run's result: its config and the content of its split table."""
    split_csv = config.splits_csv or Path(config.data_dir) / "splits.csv"
    blob = json.dumps([repr(config), sha256_file(split_csv)]).encode()
    return hashlib.sha256(blob).hexdigest()


def train_or_reuse(config) -> dict:
    """training.train(config), or the saved record of an identical finished run (so a killed benchmark resumes)."""
    import keras

    from deepfake_detector.model import training

    paths = config.output_paths()
    stamp = paths["metrics"].with_name(f"{config.run_name}_benchmark_fingerprint.txt")
    fingerprint = _fingerprint(config)
    if stamp.is_file() and stamp.read_text() == fingerprint and paths["metrics"].is_file() \
            and paths["model"].is_file():
        print(f"reusing finished run {config.run_name}")
        return {**json.loads(paths["metrics"].read_text()), "reused": True}
    keras.backend.clear_session()  # one process trains many models; start each from an empty graph
    record = training.train(config)
    atomic_write_text(stamp, fingerprint)
    return record


def training_config(settings: BenchmarkSettings, data_dir: Path, row: Row, seed: int, run: str, epochs: int,
                    splits_csv: Path):
    from deepfake_detector.model.training import TrainingConfig

    runs_dir = Path(settings.work_dir) / "runs"
    return TrainingConfig(
        data_dir=data_dir, epochs=epochs, batch_size=settings.batch_size, model_name=row.model_name,
        seed=seed, devices=settings.devices, patience=settings.patience, name=f"{row.stem}__s{seed}__{run}",
        models_dir=runs_dir, plots_dir=runs_dir / "plots", jobs=settings.jobs, splits_csv=splits_csv,
        augment=settings.augment_config(seed) if row.augmented else augment.AugmentConfig(seed=seed),
        pair_loss=row.pair_loss, ema_momentum=row.ema)


def source_fold_result(record: dict) -> dict:
    """EER of a held-out-source run, and the share of the held-out source's real clips called real at the
    run's validation threshold (its test reals are that source's clips only)."""
    test = record["test"]
    return {"eer": test.get("eer", float("nan")),
            "real_called_real": test["at_threshold"]["per_class_accuracy"]["real"],
            "n_real": test["n_real"], "n_fake": test["n_fake"],
            "train_seconds": record["training"]["seconds"], "reused": bool(record.get("reused", False))}


def benchmark_run(settings: BenchmarkSettings, data_dir: Path, split_csv: Path, row: Row, seed: int,
                  folds: dict[str, Path], source_csvs: dict[str, Path], eval_sets: list[EvalSet]) -> dict:
    """One seed of one row: main run, held-out-family and held-out-source runs, and every evaluation set."""
    from deepfake_detector.model.model_store import load_detector

    main = train_or_reuse(training_config(settings, data_dir, row, seed, "main", settings.epochs, split_csv))
    loso = {family: train_or_reuse(training_config(settings, data_dir, row, seed, f"loso-{family}",
                                                   settings.loso_epochs, fold_csv))
            for family, fold_csv in folds.items()}
    held_sources = {source: source_fold_result(train_or_reuse(training_config(
                        settings, data_dir, row, seed, f"heldsrc-{source}", settings.loso_epochs, fold_csv)))
                    for source, fold_csv in source_csvs.items()}
    detector = load_detector(Path(main["paths"]["model"]))
    evaluations = {eval_set.name: score_eval_set(detector, eval_set, settings.batch_size)
                   for eval_set in tqdm(eval_sets, desc=f"scoring {row.name} seed {seed}", unit="set")}
    loso_eers = {family: record["test"].get("eer", float("nan")) for family, record in loso.items()}
    eers = {"in-domain": main["test"].get("eer"),
            HELD_OUT_MEAN: float(np.mean(list(loso_eers.values()))) if loso_eers else None,
            HELD_OUT_SOURCE_MEAN: (float(np.mean([result["eer"] for result in held_sources.values()]))
                                   if held_sources else None),
            **{name: evaluation.get("eer") for name, evaluation in evaluations.items()}}
    return {
        "seed": seed, "parameters": int(detector.model.count_params()),
        "train_seconds": main["training"]["seconds"],
        "all_runs_train_seconds": main["training"]["seconds"] + sum(r["training"]["seconds"] for r in loso.values())
        + sum(result["train_seconds"] for result in held_sources.values()),
        "epochs_run": main["training"]["epochs_run"], "best_epoch": main["training"]["best_epoch"],
        "monitor": main["training"]["monitor"], "eer": eers, "loso": loso_eers, "sources": held_sources,
        "in_domain": {"eer": main["test"].get("eer"), "roc_auc": main["test"].get("roc_auc"),
                      "n_real": main["test"]["n_real"], "n_fake": main["test"]["n_fake"]},
        "threshold": main["threshold"], "test_eer_threshold_shift": main.get("test_eer_threshold_shift"),
        "loso_test_counts": {family: {"n_real": r["test"]["n_real"], "n_fake": r["test"]["n_fake"]}
                             for family, r in loso.items()},
        "evaluations": evaluations, "warnings": main["warnings"],
        "runs_reused": sum(record.get("reused", False) for record in (main, *loso.values()))
        + sum(result["reused"] for result in held_sources.values()),
        "runs": 1 + len(loso) + len(held_sources),
    }


def mean_sd(values) -> dict:
    """Mean and sample standard deviation over the seeds that measured a value (sd None for one seed)."""
    measured = [float(value) for value in values if value is not None and not np.isnan(value)]
    if not measured:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(np.mean(measured)), "sd": float(np.std(measured, ddof=1)) if len(measured) > 1 else None,
            "n": len(measured)}


def aggregate_row(row: Row, runs: list[dict]) -> dict:
    """A row's per-seed runs -> mean +- sd of every EER column and of every held-out family."""
    families = sorted({family for run in runs for family in run["loso"]})
    sources = sorted({source for run in runs for source in run["sources"]})
    return {
        "row": row.name, **dataclasses.asdict(row), "seeds": [run["seed"] for run in runs],
        "parameters": runs[0]["parameters"],
        "train_seconds": float(np.mean([run["train_seconds"] for run in runs])),
        "all_runs_train_seconds": float(sum(run["all_runs_train_seconds"] for run in runs)),
        "eer": {column: mean_sd([run["eer"].get(column) for run in runs]) for column in EER_COLUMNS},
        "loso": {family: mean_sd([run["loso"].get(family) for run in runs]) for family in families},
        "sources": {source: {measure: mean_sd([run["sources"].get(source, {}).get(measure) for run in runs])
                             for measure in ("eer", "real_called_real")} for source in sources},
        "threshold_shift": mean_sd([run["test_eer_threshold_shift"] for run in runs]),
        "runs_reused": sum(run["runs_reused"] for run in runs), "runs": sum(run["runs"] for run in runs),
        "per_seed": runs,
    }


# ---------------------------------------------------------------------------------------------- the run

def run_benchmark(settings: BenchmarkSettings) -> dict:
    """Render, split, train every row for every seed, score everything, write the report; returns the record."""
    started = time.perf_counter()
    settings = resolve_settings(settings)
    runs: dict[Row, list[dict]] = {row: [] for row in settings.rows()}
    corpora, eval_notes, skipped_rows, fold_notes = {}, {}, {}, []
    for (name, corpus), scale in itertools.product(settings.corpora, settings.scales):
        params, front_end = front_end_params(scale, settings.fmax), front_end_name(scale, settings.fmax)
        data_dir = render_corpus(settings, name, corpus, params)
        cross_sets = cross_dataset_sets(settings, params)
        for seed in settings.seeds:
            seed_dir = Path(settings.work_dir) / name / front_end / f"seed{seed}"
            table = split_corpus(corpus, data_dir, seed, seed_dir / "splits.csv")
            families, missing = held_out_families(table, settings.loso_families)
            folds = {family: write_split_csv(loso_table(table, family, settings.loso_train_fraction, seed),
                                             seed_dir / "folds" / f"{family}.csv") for family in families}
            source_csvs, sources_skipped = source_folds(table, settings.source_folds, settings.loso_train_fraction,
                                                        seed, seed_dir / "source_folds")
            fold_notes += [f"{name}, seed {seed}: real source {source} not held out ({reason})"
                           for source, reason in sources_skipped.items()]
            eval_sets = cross_sets + corrupted_test_sets(settings, table, params)
            eval_notes.update({f"{s.name} ({front_end})":
                               s.skipped or f"{len(s.labels)} files, {len(s.images)} pictures" for s in cross_sets})
            corpora.setdefault(name, corpus_summary(table, families, missing, list(source_csvs), corpus))
            variants = {"all": (seed_dir / "splits.csv", folds, source_csvs)}
            for row in runs:
                if (row.corpus, row.scale) != (name, scale):
                    continue
                if (row.pair_loss != "none" or row.fakes == "copies") and splits.PAIR_COLUMN not in table.columns:
                    skipped_rows[row.name] = f"{CORPUS_MANIFEST} of corpus {name} names no source_file: no pairs"
                    continue
                if row.fakes not in variants:
                    main_csv, copies_folds, copies_sources, notes = copies_only_variant(seed_dir / "copies-only",
                                                                                        *variants["all"])
                    variants[row.fakes] = (main_csv, copies_folds, copies_sources)
                    fold_notes += [f"{name}, seed {seed}: {note}" for note in notes]
                split_csv, row_folds, row_sources = variants[row.fakes]
                if split_csv is None:
                    skipped_rows[row.name] = f"seed {seed}: its main split cannot train"
                    continue
                runs[row].append(benchmark_run(settings, data_dir, split_csv, row, seed, row_folds, row_sources,
                                               eval_sets))
    rows = [aggregate_row(row, row_runs) for row, row_runs in runs.items() if row_runs]
    if not rows:
        raise BenchmarkError("no row could run: " + "; ".join(f"{k}: {v}" for k, v in skipped_rows.items()))
    results = {"settings": settings.to_dict(), "corpora": corpora, "eval_sets": eval_notes,
               "skipped_rows": skipped_rows, "fold_notes": fold_notes, "rows": rows, "best_row": best_row(rows),
               "targets": target_check(rows), "seconds": round(time.perf_counter() - started, 1),
               "platform": platform.platform(), "git_commit": _git_commit()}
    write_outputs(results, Path(settings.out_dir))
    return results


def _git_commit() -> str | None:
    from deepfake_detector.model.model_store import git_commit

    return git_commit()


def corpus_summary(table: pd.DataFrame, families: list[str], missing: list[str], sources: list[str],
                   corpus: Path) -> dict:
    """Files per split and class, fake files per held-out family, the families this corpus lacks and the real
    sources held out (first seed's split)."""
    files = table.drop_duplicates("source_path")
    # Pair sets that hold copies: a real clip without one is its own set of one file.
    pair = files[splits.PAIR_COLUMN] if splits.PAIR_COLUMN in files.columns else pd.Series("", index=files.index)
    sizes = pair[pair != ""].value_counts()
    paired = pair[pair.isin(sizes.index[sizes > 1])]
    return {"path": str(corpus),
            "files": {split: {name: int(((files["split"] == split) & (files["class"] == name)).sum())
                              for name in ("real", "fake")} for split in splits.SPLIT_NAMES},
            "fake_files_per_family": files[files["class"] == "fake"]["family"].value_counts().sort_index().to_dict(),
            "pair_sets": int(paired.nunique()), "paired_files": len(paired), "images": len(table),
            "held_out": families, "missing_families": missing, "held_out_sources": sources,
            "real_files_per_source": files[(files["class"] == "real") & (files["source"] != "")]["source"]
            .value_counts().sort_index().to_dict()}


def _mean(row: dict, column: str) -> float:
    """The seed mean of one EER column of a row; NaN when it was not measured."""
    value = row["eer"].get(column, {}).get("mean")
    return float("nan") if value is None else float(value)


def best_row(rows: list[dict]) -> str:
    """The row with the lowest mean held-out-family EER: never chosen by a cross-dataset column."""
    return min(rows, key=lambda row: (np.nan_to_num(_mean(row, HELD_OUT_MEAN), nan=np.inf), row["row"]))["row"]


def target_check(rows: list[dict]) -> dict:
    best = next(row for row in rows if row["row"] == best_row(rows))
    measured = {"crossdomain_eer": _mean(best, "crossdomain")}
    return {name: {"measured": None if np.isnan(value) else value, "target": TARGETS[name],
                   "met": None if np.isnan(value) else bool(value <= TARGETS[name])}
            for name, value in measured.items()}


# ---------------------------------------------------------------------------------------------- reporting

def _percent(value) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def _cell(stats: dict) -> str:
    """'mean +- sd' in percent over seeds, the mean alone for one seed, 'n/a' when not measured."""
    if stats.get("mean") is None:
        return "n/a"
    return _percent(stats["mean"]) + ("" if stats.get("sd") is None else f" ± {100 * stats['sd']:.1f}")


def markdown_report(results: dict) -> str:
    rows = results["rows"]
    header = ["row", "corpus", "model", "aug", "front end", "pair loss", "params", "train s", *EER_COLUMNS,
              "thr. shift"]
    seeds = results["settings"]["seeds"]
    lines = ["# Generalisation benchmark", "",
             f"EER in % (lower is better; 50 = chance), mean ± sd over {len(seeds)} seed(s) "
             f"({', '.join(map(str, seeds))}). held-out mean = mean EER over the held-out families (trained without "
             "the family's fakes, tested on all of them); it alone chooses the recommended row. held-out source "
             "mean = mean EER over the real sources held out one at a time (trained without the source's real clips "
             "and their copies). for-norm-mini, tts-mixed and crossdomain are evaluation only. Corruption columns: "
             "the corpus' test split after that corruption. thr. shift = test EER threshold minus the validation "
             "threshold (calibrated p(fake)). train s = main run, seed mean.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        shift = row["threshold_shift"]["mean"]
        cells = [row["row"], row["corpus"], row["model_name"], "yes" if row["augmented"] else "no",
                 front_end_name(row["scale"], row.get("fmax")),
                 row["pair_loss"], f"{row['parameters']:,}", f"{row['train_seconds']:.0f}",
                 *(_cell(row["eer"][column]) for column in EER_COLUMNS),
                 "n/a" if shift is None else f"{shift:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    families = sorted({family for row in rows for family in row["loso"]},
                      key=lambda name: (HELD_OUT_ORDER.index(name) if name in HELD_OUT_ORDER
                                        else -1 if name.endswith(VOCODED_SUFFIX) else len(HELD_OUT_ORDER), name))
    if families:  # none with --loso-families 0
        lines += ["", "## Held-out-family EER (%) per family", "",
                  "| row | " + " | ".join(families) + f" | {HELD_OUT_MEAN} |", "|" + "---|" * (len(families) + 2)]
        lines += [f"| {row['row']} | " + " | ".join(_cell(row["loso"].get(family, {})) for family in families)
                  + f" | {_cell(row['eer'][HELD_OUT_MEAN])} |" for row in rows]
    sources = sorted({source for row in rows for source in row["sources"]})
    if sources:
        lines += ["", "## Held-out real sources", "",
                  "EER (%) with the source's real clips and their copies held out of training, against the other "
                  "sources' test fakes; in brackets, the share (%) of that source's real clips called real at the "
                  "run's validation threshold.", "",
                  "| row | " + " | ".join(sources) + f" | {HELD_OUT_SOURCE_MEAN} |", "|" + "---|" * (len(sources) + 2)]
        lines += [f"| {row['row']} | " + " | ".join(
                      f"{_cell(row['sources'][source]['eer'])} ({_cell(row['sources'][source]['real_called_real'])})"
                      if source in row["sources"] else "n/a" for source in sources)
                  + f" | {_cell(row['eer'][HELD_OUT_SOURCE_MEAN])} |" for row in rows]
    lines += ["", "## Corpora", ""]
    for name, corpus in results["corpora"].items():
        lines.append(f"- {name} ({corpus['path']}): {corpus['images']} pictures; files per split (real/fake): "
                     + ", ".join(f"{split} {c['real']}/{c['fake']}" for split, c in corpus["files"].items())
                     + "; fake files per family: "
                     + ", ".join(f"{k} {v}" for k, v in corpus["fake_files_per_family"].items())
                     + f"; {corpus['pair_sets']} pair sets with copies ({corpus['paired_files']} files); held out: "
                     + (", ".join(corpus["held_out"]) or "none")
                     + "; skipped (not in this corpus): " + (", ".join(corpus["missing_families"]) or "none")
                     + "; real files per source: " + (", ".join(f"{k} {v}" for k, v in
                                                             corpus.get("real_files_per_source", {}).items()) or "none")
                     + "; real sources held out: " + (", ".join(corpus.get("held_out_sources", [])) or "none"))
    lines += [f"- {note}" for note in results.get("fold_notes", [])]
    if results["skipped_rows"]:
        lines += ["", "Rows not run: " + "; ".join(f"{k} ({v})" for k, v in results["skipped_rows"].items())]
    lines += ["", f"## Recommended row (lowest mean held-out-family EER): {results['best_row']}", ""]
    if len(results["corpora"]) > 1:
        lines.append("Corpora hold out different family sets (see Corpora), so compare rows of one corpus first.")
    for name, target in results["targets"].items():
        verdict = "not measured" if target["met"] is None else ("met" if target["met"] else "NOT met")
        lines.append(f"- {name} (issue 12 target, seed mean): {_percent(target['measured'])} % vs "
                     f"<= {100 * target['target']:.0f} %: {verdict}")
    lines += ["", "## Evaluation sets", ""] + [f"- {name}: {text}" for name, text in results["eval_sets"].items()]
    return "\n".join(lines + ["", "## Settings", ""] + settings_lines(results)) + "\n"


def settings_lines(results: dict) -> list[str]:
    """What the numbers were measured on: epochs, subsampling, augmentation, time."""
    settings, rows = results["settings"], results["rows"]
    runs = sum(row["runs"] for row in rows)
    return [f"- epochs: main runs {settings['epochs']}, held-out runs {settings['loso_epochs']} (early stopping on "
            f"{rows[0]['per_seed'][0]['monitor']}, patience {settings['patience']}); batch {settings['batch_size']} per "
            f"replica; {settings['devices']} logical device(s); each seed sets the split, subsamples, weights and "
            "augmentation",
            f"- held-out runs train on a seeded {100 * settings['loso_train_fraction']:.0f} % of the train files "
            "per class" + ("; no family held out" if settings["loso_families"] == 0 else
                           f"; only the first {settings['loso_families']} family held out"
                           if settings["loso_families"] else "")
            + ("; no real source held out" if settings.get("source_folds") == 0 else
               f"; only the first {settings['source_folds']} real source(s) held out"
               if settings.get("source_folds") else ""),
            f"- augmentation rows: {', '.join(settings['augment'])}; rendered copies per train file: "
            f"{settings['augment_copies']}; pair-loss rows train on batches of whole pair sets (a real clip with "
            "its copy-syntheses) with a supervised contrastive loss (model/pairs.py)",
            f"- evaluation sets capped at {settings['eval_files_per_class']} files per class" if
            settings["eval_files_per_class"] else "- evaluation sets: every file",
            ("- QUICK smoke mode: numbers mean little;" if settings["quick"] else "- full run;")
            + f" total {results['seconds'] / 60:.1f} min ({sum(row['runs_reused'] for row in rows)} of {runs} "
            f"training runs reused from an earlier identical run, with their original train seconds) on "
            f"{results['platform']}; git {results['git_commit']}"]


def plot_results(results: dict, out_png: Path) -> Path:
    """Grouped bars: seed-mean EER per column with the sd as error bar, one bar per row; n/a marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["rows"]
    figure = Figure(figsize=(max(12, 0.5 * len(rows) * len(EER_COLUMNS) / 2), 5.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(rows)
    positions = np.arange(len(EER_COLUMNS))
    means = np.array([[_mean(row, column) for column in EER_COLUMNS] for row in rows]) * 100  # (rows, columns)
    sds = np.array([[row["eer"][column].get("sd") or 0.0 for column in EER_COLUMNS] for row in rows]) * 100
    for number, (row, values, errors) in enumerate(zip(rows, means, sds)):
        offsets = positions + (number - (len(rows) - 1) / 2) * width
        axes.bar(offsets, np.nan_to_num(values), width, yerr=errors, label=row["row"], capsize=1.5)
        for offset, value in zip(offsets, values):
            # Every bar is labelled, so a 0 % bar and an unmeasured one are told apart.
            axes.text(offset, np.nan_to_num(value) + 0.5, "n/a" if np.isnan(value) else f"{value:.0f}",
                      rotation=90, ha="center", va="bottom", fontsize=6)
    axes.axhline(50, color="grey", linestyle=":", label="chance")
    axes.set_xticks(positions, EER_COLUMNS, rotation=15)
    top = 60 if np.nanmax(means, initial=0) < 50 else 110  # above 50 the scores rank the classes the wrong way
    axes.set(ylabel="EER (%), seed mean ± sd", ylim=(0, top),
             title="Generalisation benchmark: EER per evaluation (lower is better)")
    axes.legend(ncols=4, fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.14))
    figure.tight_layout()
    with atomic_path(Path(out_png)) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return Path(out_png)


def write_outputs(results: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "generalisation.json", json.dumps(results, indent=2, default=float) + "\n")
    atomic_write_text(out_dir / "generalisation.md", markdown_report(results))
    plot_results(results, out_dir / "generalisation.png")
