"""Generalisation benchmark: does a detector catch fakes it was not trained on, on data it was not trained on?

Protocol (one run; rows: each model of `models` without and with augmentation, by default reference `baseline`,
baseline + augmentation, `compact_cmn`, compact_cmn + augmentation):

1. The demo corpus (`demo_manifest.csv` names each fake's `system_family`) is rendered ONCE into the work folder
   with `spectrograms.generate` (resumable) and split ONCE by `groups.csv` with `splits.split_folder`. Every
   training set below is a split table over those same PNGs (`TrainingConfig.splits_csv`).
2. Main run per row: train on every family; in-domain EER on the test split.
3. Leave-one-system-out (LOSO): per fake family (espeak-ng, flite, festival, piper, and the WORLD / Griffin-Lim /
   LPC vocoders as ONE copy-synthesis family) train without that family's fakes in train AND val, on a seeded
   per-class subsample of the train files, and test on ALL of that family's clips (none was seen in training)
   plus the test-split reals. The EER per held-out family and the mean are reported.
4. Cross-dataset: each main model scores `../shared/data/for-norm-mini` (testing split), `tts-mixed` and
   `crossdomain`. These are EVALUATION ONLY: nothing is trained, tuned, thresholded or chosen on them. Pictures
   are rendered once per file (cached on disk) and scored by every model.
5. Robustness: the demo test split after each fixed corruption of `augment.corrupt`; EER per corruption.
6. Calibration: how far the test EER threshold moved from the validation threshold (from training).

Outputs: `<out>/generalisation.md` (tables and settings), `generalisation.png` (grouped bars), `generalisation.json`.
"""
from __future__ import annotations

import dataclasses
import hashlib
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

CORPUS_MANIFEST = "demo_manifest.csv"
GROUPS_CSV = "groups.csv"
COPY_SYNTHESIS = "copy-synthesis"
# LOSO order: the text-to-speech systems, then the vocoder family; --quick holds out only the first.
FAMILY_ORDER = ("espeak-ng", "flite", "festival", "piper", COPY_SYNTHESIS)
# Evaluation-only data sets under the shared data folder: (name, manifest, split or None for all rows).
CROSS_DATASETS = (("for-norm-mini", "for-norm-mini/manifest.csv", "test"),
                  ("tts-mixed", "tts-mixed/manifest.csv", None),
                  ("crossdomain", "crossdomain/manifest.csv", None))
CROSS_NAMES = tuple(name for name, _, _ in CROSS_DATASETS)
# Shown per row, in this order, in the table and the plot.
EER_COLUMNS = ("in-domain", "LOSO mean", *CROSS_NAMES, *augment.CORRUPTIONS)
# Targets of issue 7 for the best row (chosen on the demo corpus' LOSO mean, never on crossdomain).
TARGETS = {"crossdomain_eer": 0.20, "loso_mean_eer": 0.15, "mp3_64k_minus_clean": 0.05}


class BenchmarkError(Exception):
    """The benchmark cannot run; str(error) says why in one line."""


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    model_name: str
    augmented: bool

    @property
    def stem(self) -> str:
        return self.name.replace("+", "_")


def benchmark_rows(model_names: tuple[str, ...]) -> list[Row]:
    """Each model without and with augmentation, e.g. baseline, baseline+aug, compact_cmn, compact_cmn+aug."""
    return [Row(name + ("+aug" if augmented else ""), name, augmented)
            for name in model_names for augmented in (False, True)]


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
    corpus: Path = Path("data_clean")
    work_dir: Path = Path("benchmarks/work")
    out_dir: Path = Path("benchmarks")
    shared_data: Path = Path("../shared/data")
    # Registry names, two rows each (without / with augmentation); add "compact" for the ablation without the
    # per-band time-mean normalisation (+8 min).
    models: tuple[str, ...] = ("baseline", "compact_cmn")
    epochs: int = 6  # main runs (early stopping on validation AUC may end sooner)
    loso_epochs: int = 4
    loso_train_fraction: float = 0.5  # seeded per-class share of the train files in each LOSO run
    loso_families: int | None = None  # hold out only the first N of FAMILY_ORDER; None = all
    augment: tuple[str, ...] = augment.AUGMENTATION_NAMES
    augment_copies: int = 1
    eval_files_per_class: int | None = None  # seeded cap per class on each evaluation set; None = all files
    seed: int = 42
    jobs: int = 2
    devices: int = 1
    batch_size: int = 32
    patience: int = 3
    quick: bool = False

    def augment_config(self) -> augment.AugmentConfig:
        return augment.AugmentConfig(augmentations=self.augment, copies=self.augment_copies, seed=self.seed)

    def to_dict(self) -> dict:
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in dataclasses.asdict(self).items()}


def quick_settings(settings: BenchmarkSettings) -> BenchmarkSettings:
    """CI-sized smoke mode: a tiny synthetic corpus made on the fly, 1 epoch, 1 LOSO family, few eval files."""
    return dataclasses.replace(settings, corpus=Path(settings.work_dir) / "tiny_corpus", epochs=1, loso_epochs=1,
                               loso_train_fraction=1.0, loso_families=1, augment_copies=1,
                               eval_files_per_class=6, quick=True)


# ---------------------------------------------------------------------------------------------- corpus

def family_of(system_family: str) -> str:
    """Fake family held out together: the three copy-synthesis vocoders form one."""
    return COPY_SYNTHESIS if system_family.endswith("-copysynth") else system_family


def make_tiny_corpus(folder: Path, clips_per_family: int = 6, seed: int = 0) -> Path:
    """A demo-corpus-shaped folder of 1 s synthetic clips for smoke runs: 'real' are vibrato voices with noise,
    each fake family a differently shaped buzz. Same manifest and groups.csv columns as the demo corpus."""
    folder = Path(folder)
    systems = ("espeak-ng", "flite", "festival", "piper", "world-copysynth", "griffinlim-copysynth",
               "lpc-copysynth")
    rng = np.random.default_rng(seed)
    sample_rate, t = 16000, np.arange(16000) / 16000
    rows = []
    for index in range(clips_per_family * len(systems)):
        f0 = rng.uniform(100, 220)
        vibrato = np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t))
        rows.append(("real", "human", vibrato + 0.05 * rng.standard_normal(len(t)), f"real:{index}"))
    for number, system in enumerate(systems):
        for index in range(clips_per_family):
            phase = 2 * np.pi * rng.uniform(100, 220) * t
            buzz = np.sign(np.sin(phase)) * 0.3 + np.sin((number + 2) * phase)
            rows.append(("fake", system, buzz, f"{system}:{index}"))
    manifest = []
    for index, (label, system, waveform, group) in enumerate(rows):
        file = f"{label}/{system}_{index:03d}.flac"
        (folder / label).mkdir(parents=True, exist_ok=True)
        soundfile.write(str(folder / file), (0.3 * waveform / np.abs(waveform).max()).astype(np.float32),
                        sample_rate)
        manifest.append({"file": file, "label": label, "system_family": system, "group": group})
    manifest = pd.DataFrame(manifest)
    atomic_write_text(folder / CORPUS_MANIFEST, manifest.to_csv(index=False))
    atomic_write_text(folder / GROUPS_CSV, manifest.rename(columns={"file": "path"})[["path", "group"]]
                      .to_csv(index=False))
    return folder


def prepare_corpus(settings: BenchmarkSettings) -> tuple[Path, pd.DataFrame]:
    """Render and split the corpus once into <work>/spectrograms; return the folder and its split table with a
    `family` column ('' for real clips)."""
    corpus = Path(settings.corpus)
    if settings.quick and not (corpus / CORPUS_MANIFEST).is_file():
        make_tiny_corpus(corpus, seed=settings.seed)
    for needed in (CORPUS_MANIFEST, GROUPS_CSV):
        if not (corpus / needed).is_file():
            raise BenchmarkError(f"{corpus / needed} is missing: build the demo corpus with "
                                 "scripts/make_demo_data.py (or use --quick)")
    data_dir = Path(settings.work_dir) / "spectrograms"
    try:
        spectrograms.generate(corpus, data_dir, Params(), jobs=settings.jobs)
        table, _ = splits.split_folder(data_dir, seed=settings.seed, groups_csv=corpus / GROUPS_CSV)
    except (spectrograms.SpectrogramError, splits.SplitError) as error:
        raise BenchmarkError(str(error)) from error
    manifest = pd.read_csv(corpus / CORPUS_MANIFEST, dtype=str, keep_default_na=False)
    family = {str((corpus / file).resolve()): family_of(system) if label == "fake" else ""
              for file, label, system in zip(manifest["file"], manifest["label"], manifest["system_family"])}
    unknown = sorted(set(table["source_path"]) - set(family))
    if unknown:
        raise BenchmarkError(f"{len(unknown)} rendered file(s) are not in {CORPUS_MANIFEST}, e.g. {unknown[0]}")
    return data_dir, table.assign(family=table["source_path"].map(family))


def held_out_families(table: pd.DataFrame, limit: int | None) -> list[str]:
    present = set(table.loc[table["class"] == "fake", "family"])
    ordered = [name for name in FAMILY_ORDER if name in present] + sorted(present - set(FAMILY_ORDER))
    return ordered[:limit]


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


def write_split_csv(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(Path(path)) as tmp:
        table[splits.SPLITS_COLUMNS].to_csv(tmp, index=False)
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
            table = cap_per_class(load_labelled_data(path, split), settings.eval_files_per_class, settings.seed)
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


def training_config(settings: BenchmarkSettings, data_dir: Path, row: Row, run: str, epochs: int,
                    splits_csv: Path | None = None):
    from deepfake_detector.model.training import TrainingConfig

    runs_dir = Path(settings.work_dir) / "runs"
    return TrainingConfig(
        data_dir=data_dir, epochs=epochs, batch_size=settings.batch_size, model_name=row.model_name,
        seed=settings.seed, devices=settings.devices, patience=settings.patience, name=f"{row.stem}__{run}",
        models_dir=runs_dir, plots_dir=runs_dir / "plots", jobs=settings.jobs, splits_csv=splits_csv,
        augment=settings.augment_config() if row.augmented else augment.AugmentConfig(seed=settings.seed))


def benchmark_row(settings: BenchmarkSettings, data_dir: Path, row: Row, folds: dict[str, Path],
                  eval_sets: list[EvalSet]) -> dict:
    """Main run, LOSO runs and every evaluation set for one row."""
    from deepfake_detector.model.model_store import load_detector

    main = train_or_reuse(training_config(settings, data_dir, row, "main", settings.epochs))
    loso = {family: train_or_reuse(training_config(settings, data_dir, row, f"loso-{family}",
                                                   settings.loso_epochs, fold_csv))
            for family, fold_csv in folds.items()}
    detector = load_detector(Path(main["paths"]["model"]))
    evaluations = {eval_set.name: score_eval_set(detector, eval_set, settings.batch_size)
                   for eval_set in tqdm(eval_sets, desc=f"scoring {row.name}", unit="set")}
    loso_eers = {family: record["test"].get("eer", float("nan")) for family, record in loso.items()}
    return {
        "row": row.name, "model_name": row.model_name, "augmented": row.augmented,
        "parameters": int(detector.model.count_params()),
        "train_seconds": main["training"]["seconds"],
        "all_runs_train_seconds": main["training"]["seconds"] + sum(r["training"]["seconds"] for r in loso.values()),
        "epochs_run": main["training"]["epochs_run"], "best_epoch": main["training"]["best_epoch"],
        "monitor": main["training"]["monitor"],
        "in_domain": {"eer": main["test"].get("eer"), "roc_auc": main["test"].get("roc_auc"),
                      "n_real": main["test"]["n_real"], "n_fake": main["test"]["n_fake"]},
        "threshold": main["threshold"], "test_eer_threshold_shift": main.get("test_eer_threshold_shift"),
        "loso": loso_eers, "loso_mean_eer": float(np.mean(list(loso_eers.values()))) if loso_eers else None,
        "loso_test_counts": {family: {"n_real": r["test"]["n_real"], "n_fake": r["test"]["n_fake"]}
                             for family, r in loso.items()},
        "evaluations": evaluations, "warnings": main["warnings"],
        "runs_reused": sum(record.get("reused", False) for record in (main, *loso.values())),
        "runs": 1 + len(loso),
    }


# ---------------------------------------------------------------------------------------------- the run

def run_benchmark(settings: BenchmarkSettings) -> dict:
    """Prepare the corpus, train every row, score everything, write the report; returns the results record."""
    started = time.perf_counter()
    if settings.quick:
        settings = quick_settings(settings)
    work_dir = Path(settings.work_dir)
    data_dir, table = prepare_corpus(settings)
    params = Params.load(data_dir / "params.json")
    folds = {family: write_split_csv(loso_table(table, family, settings.loso_train_fraction, settings.seed),
                                     work_dir / "folds" / f"{family}.csv")
             for family in held_out_families(table, settings.loso_families)}
    eval_sets = cross_dataset_sets(settings, params) + corrupted_test_sets(settings, table, params)
    rows = [benchmark_row(settings, data_dir, row, folds, eval_sets) for row in benchmark_rows(settings.models)]
    results = {"settings": settings.to_dict(), "corpus": corpus_summary(table, folds),
               "eval_sets": {s.name: s.skipped or f"{len(s.labels)} files, {len(s.images)} pictures"
                             for s in eval_sets},
               "rows": rows, "best_row": best_row(rows), "targets": target_check(rows),
               "seconds": round(time.perf_counter() - started, 1), "platform": platform.platform(),
               "git_commit": _git_commit()}
    write_outputs(results, Path(settings.out_dir))
    return results


def _git_commit() -> str | None:
    from deepfake_detector.model.model_store import git_commit

    return git_commit()


def corpus_summary(table: pd.DataFrame, folds: dict[str, Path]) -> dict:
    files = table.drop_duplicates("source_path")
    return {"files": {split: {name: int(((files["split"] == split) & (files["class"] == name)).sum())
                              for name in ("real", "fake")} for split in splits.SPLIT_NAMES},
            "fake_files_per_family": files[files["class"] == "fake"]["family"].value_counts().sort_index().to_dict(),
            "images": len(table), "loso_families": list(folds)}


def _eer(row: dict, column: str) -> float:
    """One EER cell of a row by column name; NaN when it was not measured."""
    if column == "in-domain":
        value = row["in_domain"]["eer"]
    elif column == "LOSO mean":
        value = row["loso_mean_eer"]
    else:
        value = row["evaluations"].get(column, {}).get("eer")
    return float("nan") if value is None else float(value)


def best_row(rows: list[dict]) -> str:
    """The row with the lowest mean LOSO EER: chosen on the demo corpus, never on the cross-dataset sets."""
    return min(rows, key=lambda row: (np.nan_to_num(_eer(row, "LOSO mean"), nan=np.inf), row["row"]))["row"]


def target_check(rows: list[dict]) -> dict:
    best = next(row for row in rows if row["row"] == best_row(rows))
    measured = {"crossdomain_eer": _eer(best, "crossdomain"), "loso_mean_eer": _eer(best, "LOSO mean"),
                "mp3_64k_minus_clean": _eer(best, "mp3_64k") - _eer(best, "in-domain")}
    # A model near chance on clean data cannot get much worse under MP3: say what the difference is made of.
    details = {"mp3_64k_minus_clean": f"MP3 {_percent(_eer(best, 'mp3_64k'))} % vs clean "
                                      f"{_percent(_eer(best, 'in-domain'))} %"}
    return {name: {"measured": None if np.isnan(value) else value, "target": TARGETS[name],
                   "met": None if np.isnan(value) else bool(value <= TARGETS[name]), "detail": details.get(name, "")}
            for name, value in measured.items()}


# ---------------------------------------------------------------------------------------------- reporting

def _percent(value) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def _cell(row: dict, column: str) -> str:
    """EER in percent, with ROC AUC for the cross-dataset sets; 'n/a' when not measured."""
    if column in CROSS_NAMES:
        evaluation = row["evaluations"].get(column, {})
        if "eer" not in evaluation:
            return "n/a"
        return f"{100 * evaluation['eer']:.1f} ({evaluation['roc_auc']:.2f})"
    return _percent(_eer(row, column))


def markdown_report(results: dict) -> str:
    rows = results["rows"]
    header = ["row", "params", "train s (main / all runs)", *EER_COLUMNS, "thr. shift"]
    lines = ["# Generalisation benchmark", "",
             "EER in % (lower is better; 50 = chance). Cross-dataset cells: EER (ROC AUC). LOSO = leave one "
             "system out: trained without a fake family, tested on it. Corruption columns: the demo test split "
             "after that corruption. thr. shift = test EER threshold minus the validation threshold (calibrated "
             "p(fake)).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        shift = row["test_eer_threshold_shift"]
        cells = [row["row"], f"{row['parameters']:,}",
                 f"{row['train_seconds']:.0f} / {row['all_runs_train_seconds']:.0f}",
                 *(_cell(row, column) for column in EER_COLUMNS), "n/a" if shift is None else f"{shift:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    families = list(rows[0]["loso"])
    lines += ["", "## Leave-one-system-out EER (%) per held-out family", "",
              "| row | " + " | ".join(families) + " | mean |", "|" + "---|" * (len(families) + 2)]
    lines += [f"| {row['row']} | " + " | ".join(_percent(row["loso"][family]) for family in families)
              + f" | {_percent(_eer(row, 'LOSO mean'))} |" for row in rows]
    counts = rows[0]["loso_test_counts"]
    lines += ["", "LOSO test sets (real / fake files): "
              + ", ".join(f"{family} {c['n_real']} / {c['n_fake']}" for family, c in counts.items())]
    lines += ["", "## Targets (issue 7), best row by mean LOSO EER: " + results["best_row"], ""]
    for name, target in results["targets"].items():
        verdict = "not measured" if target["met"] is None else ("met" if target["met"] else "NOT met")
        detail = f" ({target['detail']})" if target["detail"] else ""
        lines.append(f"- {name}: {_percent(target['measured'])} % vs <= {100 * target['target']:.0f} %: "
                     f"{verdict}{detail}")
    lines += ["", "## Evaluation sets", ""] + [f"- {name}: {text}" for name, text in results["eval_sets"].items()]
    return "\n".join(lines + ["", "## Settings", ""] + settings_lines(results)) + "\n"


def settings_lines(results: dict) -> list[str]:
    """What the numbers were measured on: corpus, epochs, subsampling, augmentation, time."""
    settings, rows, corpus = results["settings"], results["rows"], results["corpus"]
    return [f"- corpus: {settings['corpus']} ({corpus['images']} pictures); files per split (real/fake): "
            + ", ".join(f"{split} {c['real']}/{c['fake']}" for split, c in corpus["files"].items())
            + "; fake files per family: " + ", ".join(f"{k} {v}" for k, v in corpus["fake_files_per_family"].items()),
            f"- epochs: main runs {settings['epochs']}, LOSO runs {settings['loso_epochs']} (early stopping on "
            f"{rows[0]['monitor']}, patience {settings['patience']}); main runs stopped after "
            + ", ".join(f"{row['epochs_run']} (best {row['best_epoch']})" for row in rows)
            + f" epochs; batch {settings['batch_size']}; "
            f"{settings['devices']} logical device(s); seed {settings['seed']} for splits, subsamples, "
            "weights and augmentation",
            f"- LOSO runs train on a seeded {100 * settings['loso_train_fraction']:.0f} % of the train files per "
            f"class; held-out families: {', '.join(corpus['loso_families'])}",
            f"- augmentation rows: {', '.join(settings['augment'])}; rendered copies per train file: "
            f"{settings['augment_copies']} (each waveform transform fires with probability "
            f"{augment.AugmentConfig().probability:g}; SpecAugment masks when listed)",
            f"- evaluation sets capped at {settings['eval_files_per_class']} files per class" if
            settings["eval_files_per_class"] else "- evaluation sets: every file",
            ("- QUICK smoke mode (synthetic tiny corpus): numbers mean nothing;" if settings["quick"]
             else "- full run;")
            + f" total {results['seconds'] / 60:.1f} min ({sum(row['runs_reused'] for row in rows)} of "
            f"{sum(row['runs'] for row in rows)} training runs reused from an earlier identical run, with their "
            f"original train seconds) on {results['platform']}; git {results['git_commit']}"]


def plot_results(results: dict, out_png: Path) -> Path:
    """Grouped bars: EER per column, one bar per row; unmeasured cells are marked n/a."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["rows"]
    figure = Figure(figsize=(12, 5))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(rows)
    positions = np.arange(len(EER_COLUMNS))
    eers = np.array([[_eer(row, column) for column in EER_COLUMNS] for row in rows]) * 100  # (rows, columns)
    for number, (row, values) in enumerate(zip(rows, eers)):
        offsets = positions + (number - (len(rows) - 1) / 2) * width
        axes.bar(offsets, np.nan_to_num(values), width, label=row["row"])
        for offset, value in zip(offsets, values):
            # Every bar is labelled, so a 0 % bar and an unmeasured one are told apart.
            axes.text(offset, np.nan_to_num(value) + 0.5, "n/a" if np.isnan(value) else f"{value:.0f}",
                      rotation=90, ha="center", va="bottom", fontsize=7)
    axes.axhline(50, color="grey", linestyle=":", label="chance")
    axes.set_xticks(positions, EER_COLUMNS, rotation=15)
    top = 60 if np.nanmax(eers, initial=0) < 50 else 110  # above 50 the scores rank the classes the wrong way
    axes.set(ylabel="EER (%)", ylim=(0, top), title="Generalisation benchmark: EER per evaluation (lower is better)")
    axes.legend(ncols=5, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14))
    figure.tight_layout()
    with atomic_path(Path(out_png)) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return Path(out_png)


def write_outputs(results: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "generalisation.json", json.dumps(results, indent=2, default=float) + "\n")
    atomic_write_text(out_dir / "generalisation.md", markdown_report(results))
    plot_results(results, out_dir / "generalisation.png")
