"""Training a detector on a rendered, split spectrogram folder, then calibrating, thresholding and scoring it.

Steps: seeds -> a tf.distribute strategy (distribute.py: MirroredStrategy on GPUs or the CPU split into N logical
devices, or MultiWorkerMirroredStrategy across machines from TF_CONFIG) -> tf.data from splits.csv ->
fit with EarlyStopping on validation AUC by default, or validation loss (never accuracy: ties bring back a
constant predictor, PITFALLS 1), restoring the best epoch's weights -> window scores averaged per source file ->
Platt calibration and
decision threshold chosen on validation files only -> test scored once -> model + metadata, metrics, per-file
scores, plots and a model card.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from deepfake_detector.data import augment
from deepfake_detector.model import distribute, model_store, pairs
from deepfake_detector.model.pair_loss import PairLossTrainer, classifier_of
from deepfake_detector.report import metrics, model_card, reports
from deepfake_detector.model.dataset import (PAIR_COLUMN, DataError, check_trainable, choose_cache, class_labels,
                                             data_summary, load_data_params, load_split_table, make_dataset)
from deepfake_detector.model.distribute import make_strategy
from deepfake_detector.model.inference import aggregate
from deepfake_detector.io_utils import atomic_path, atomic_write_text
from deepfake_detector.model.models import build_model
from deepfake_detector.params import Params

# Window scores of one source file are averaged into the file's score (see inference.AGGREGATES).
AGGREGATE_RULE = "mean"


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    data_dir: Path = Path("spectrograms")
    epochs: int = 10
    batch_size: int = 32  # per replica; the global batch is this times the number of replicas
    model_name: str = "baseline"
    seed: int = 42
    devices: int = 1  # logical CPU devices when there is no GPU; with GPUs every visible GPU is used
    patience: int = 3
    # Validation AUC ranks files the way the EER threshold uses them; validation loss also punishes
    # over-confidence, which calibration fixes afterwards, and on the demo corpus it stopped runs at epoch 1.
    monitor: str = "val_auc"
    learning_rate: float = 1e-3
    name: str | None = None  # output file stem; defaults to the model name
    models_dir: Path = Path("models")
    plots_dir: Path = Path("plots")
    target_fpr: float | None = None  # threshold for this validation false-positive rate instead of the EER
    augment: augment.AugmentConfig = augment.AugmentConfig()  # training data only; none by default
    jobs: int = 1  # worker processes rendering augmented copies
    splits_csv: Path | None = None  # another split table over data_dir's PNGs; None means data_dir/splits.csv
    strategy: str = "auto"  # see distribute.STRATEGIES
    cache: str = "auto"  # see dataset.CACHE_MODES
    mixed_precision: bool = False  # float16 compute with float32 weights: a GPU speed-up, a CPU slow-down
    # Pair sets (splits.csv column `pair`): batches holding a real clip with its copies, and an optional pair
    # loss on the embedding (pairs.PAIR_LOSSES; "none" = binary cross-entropy alone). See model/pairs.py.
    pair_batches: bool = False
    pair_loss: str = "none"
    pair_weight: float = 0.5
    # Polyak averaging: the optimizer keeps an exponential moving average of the weights with this momentum, and
    # validation, early stopping and the saved model use the average. On ~30 steps per epoch the raw weights'
    # validation AUC swings by 0.1-0.2 from one epoch to the next, so early stopping keeps a lucky epoch.
    ema_momentum: float | None = None

    @property
    def uses_pairs(self) -> bool:
        """A pair loss needs pair-set batches, so it turns them on."""
        return self.pair_batches or self.pair_loss != "none"

    @property
    def run_name(self) -> str:
        return self.name or self.model_name

    def output_paths(self) -> dict[str, Path]:
        models, name = Path(self.models_dir), self.run_name
        return {"model": models / f"{name}.keras", "card": models / f"{name}.md",
                "history": models / f"{name}_history.csv", "metrics": models / f"{name}_metrics.json",
                "test_scores": models / f"{name}_test_scores.csv", "backup": models / f"{name}.backup",
                "history_plot": Path(self.plots_dir) / f"{name}_history.png"}


def set_seeds(seed: int) -> None:
    """Seed Python, numpy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_model(model_name: str, params: Params, learning_rate: float, pair_loss: str = "none",
                  pair_weight: float = 0.5, ema_momentum: float | None = None) -> keras.Model:
    """Build and compile inside the caller's strategy scope: Adam, binary cross-entropy, accuracy and AUC; with a
    pair loss the network is wrapped in a PairLossTrainer (classifier_of gives it back); with `ema_momentum` the
    optimizer keeps a moving average of the weights (make_callbacks swaps it in for validation)."""
    model = build_model(model_name, params)
    if pair_loss != "none":
        model = PairLossTrainer(model, pair_loss, pair_weight)
    optimizer = keras.optimizers.Adam(learning_rate, use_ema=ema_momentum is not None,
                                      ema_momentum=ema_momentum or 0.99)
    model.compile(optimizer=optimizer, loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.AUC(name="auc")])
    return model


class EpochTimer(keras.callbacks.Callback):
    """Seconds spent on the training pass of each epoch (validation excluded), and its training steps."""

    def __init__(self):
        super().__init__()
        self.train_seconds: list[float] = []
        self.steps: list[int] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1

    def on_test_begin(self, logs=None):
        # fit() runs validation through the same callbacks; the training pass of this epoch ends here.
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()  # an epoch without validation ends its training pass here

    def _stop(self):
        if self._started:
            self.train_seconds.append(time.perf_counter() - self._started)
            self._started = 0.0


class OneBasedCSVLogger(keras.callbacks.CSVLogger):
    """CSVLogger whose epoch column counts from 1, like the Keras progress lines, the plot and `best_epoch`."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


def throughput(n_images: int, train_seconds: list[float]) -> dict:
    """Images per second over all epochs, and after the first (which also traces the graph and fills the cache)."""
    rates = {"images_per_second": n_images * len(train_seconds) / max(sum(train_seconds), 1e-9)}
    if len(train_seconds) > 1:
        rates["steady_images_per_second"] = n_images * (len(train_seconds) - 1) / max(sum(train_seconds[1:]), 1e-9)
    return rates


def split_table(table: pd.DataFrame, split: str) -> pd.DataFrame:
    part = table[table["split"] == split]
    if part.empty:
        raise DataError(f"splits.csv has no '{split}' rows")
    return part


def score_files(model: keras.Model, table: pd.DataFrame, data_dir: Path, batch_size: int,
                image_shape: tuple[int, int, int]) -> pd.DataFrame:
    """Raw network scores of every window, aggregated per source file (source_path, label, p_fake_raw, windows)."""
    dataset = make_dataset(table, data_dir, batch_size, training=False, seed=0, image_shape=image_shape)
    windows = table.assign(p_fake_raw=model.predict(dataset, verbose=1).ravel())
    files = windows.groupby("source_path", sort=False).agg(
        label=("label", "first"), label_count=("label", "nunique"),
        p_fake_raw=("p_fake_raw", lambda scores: aggregate(scores, AGGREGATE_RULE)),
        windows=("png_path", "size")).reset_index()
    if (files["label_count"] > 1).any():
        raise DataError(f"source file {files.loc[files['label_count'] > 1, 'source_path'].iloc[0]} has "
                        "windows of both classes in splits.csv")
    return files.drop(columns="label_count")


def fit_calibration(raw_scores: np.ndarray, labels: np.ndarray) -> tuple[dict | None, list[str]]:
    """Platt calibration fitted on validation files, or None (with a warning) when it would flip the ranking."""
    calibration = model_store.fit_platt(raw_scores, labels)
    if calibration["slope"] <= 0:
        return None, [f"validation scores rank the classes the wrong way (Platt slope {calibration['slope']:.3g}):"
                      " calibration skipped, scores are raw network outputs"]
    return calibration, []


def threshold_at_fpr(labels, scores, target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate (reals called fake) is at most `target_fpr`."""
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target false-positive rate must lie in [0, 1], got {target_fpr}")
    _, fpr, thresholds = metrics.det_curve(labels, scores)
    return float(thresholds[np.argmax(fpr <= target_fpr)])  # fpr falls as the threshold rises; +inf gives 0


def _between_scores(scores, threshold: float) -> float:
    """Move a threshold that sits on a score halfway (on the logit scale) down to the next lower score.

    The DET curve puts thresholds exactly on validation scores, so the EER threshold is often the lowest
    validation fake score; a test fake scoring a hair below it would be missed. Halfway keeps every validation
    decision unchanged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    lower = scores[scores < threshold]
    if not np.isfinite(threshold) or lower.size == 0:
        return float(threshold)
    halfway = (model_store.logit(threshold) + model_store.logit(lower.max())) / 2.0
    midpoint = float(1.0 / (1.0 + np.exp(-halfway)))
    # Scores within 1e-7 of 0 or 1 collapse under the logit clipping; then keep the threshold as it is.
    return midpoint if lower.max() < midpoint <= threshold else float(threshold)


def choose_threshold(labels, scores, target_fpr: float | None = None) -> tuple[float, str]:
    """Decision threshold on validation scores: the EER point, or the point with the target false-positive rate."""
    if target_fpr is None:
        threshold, rule = metrics.compute_eer(labels, scores)[1], "validation EER"
    else:
        threshold = threshold_at_fpr(labels, scores, target_fpr)
        rule = f"validation false-positive rate <= {target_fpr:g}"
    return _between_scores(scores, threshold), rule


def make_callbacks(config: TrainingConfig, timer: EpochTimer,
                   resumable: bool = False) -> tuple[list, keras.callbacks.EarlyStopping]:
    """EarlyStopping (restoring the best epoch), the timer and CSVLogger; with `resumable`, BackupAndRestore
    first, so a restarted multi-worker run (one worker crashed, the cluster manager restarted them all) goes on from
    the last finished epoch instead of epoch 1. Its folder is deleted when training ends normally."""
    paths = config.output_paths()
    if config.monitor not in reports.MONITOR_MODES:
        raise ValueError(f"cannot monitor '{config.monitor}'; choose one of: {', '.join(reports.MONITOR_MODES)}")
    if config.ema_momentum is not None and not 0 < config.ema_momentum < 1:
        raise ValueError(f"the weight average's momentum must lie between 0 and 1, got {config.ema_momentum}")
    mode = reports.MONITOR_MODES[config.monitor]
    # restore_best_weights puts the best epoch's weights back at the end of fit() whether or not training stopped
    # early, so no checkpoint file is needed: models/<name>.keras, saved with its metadata, is the one copy.
    early_stopping = keras.callbacks.EarlyStopping(monitor=config.monitor, mode=mode, patience=config.patience,
                                                   restore_best_weights=True, verbose=1)
    backup = [keras.callbacks.BackupAndRestore(str(paths["backup"]))] if resumable else []
    # Placed before EarlyStopping: the averaged weights are in the model while each epoch's validation runs and
    # while EarlyStopping copies the best epoch, so the model it restores at the end is an average.
    averaging = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema_momentum is not None else []
    logger = OneBasedCSVLogger(paths["history"], append=resumable)
    return backup + averaging + [early_stopping, timer, logger], early_stopping


def _write_scores_csv(files: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        files[["source_path", "label", "p_fake", "p_fake_raw", "windows"]].to_csv(tmp, index=False)


def evaluate_run(val_files: pd.DataFrame, test_files: pd.DataFrame, target_fpr: float | None) -> dict:
    """Calibration and threshold from validation files; test metrics at that threshold, at 0.5 and at test EER."""
    calibration, warnings = fit_calibration(val_files["p_fake_raw"].to_numpy(), val_files["label"].to_numpy())
    for files in (val_files, test_files):
        files["p_fake"] = model_store.apply_calibration(files["p_fake_raw"].to_numpy(), calibration)
    threshold, rule = choose_threshold(val_files["label"], val_files["p_fake"], target_fpr)
    validation = metrics.summarise(val_files["label"], val_files["p_fake"], threshold)
    test = metrics.summarise(test_files["label"], test_files["p_fake"], threshold)
    result = {"threshold": threshold, "threshold_rule": rule, "calibration": calibration,
              "aggregate": AGGREGATE_RULE, "test": test, "validation": validation,
              # What a naive deployment of the raw network at 0.5 would do (PITFALLS 4).
              "test_raw_at_0.5": metrics.threshold_metrics(test_files["label"], test_files["p_fake_raw"], 0.5)}
    if "eer_threshold" in test:
        result["test_eer_threshold"] = test["eer_threshold"]
        result["test_eer_threshold_shift"] = test["eer_threshold"] - threshold
    result["warnings"] = (warnings + reports.evaluation_warnings(test, "test")
                          + reports.evaluation_warnings(validation, "validation"))
    return result


def with_augmented_copies(table: pd.DataFrame, config: TrainingConfig, params: Params) -> pd.DataFrame:
    """The split table plus the rendered augmented copies of its train files, appended as train rows only."""
    copies = augment.render_augmented_copies(table, config.data_dir, params, config.augment, config.jobs)
    if copies.empty:
        return table
    if PAIR_COLUMN in table.columns:  # an augmented copy joins its source file's pair set
        pair_of = table.drop_duplicates("source_path").set_index("source_path")[PAIR_COLUMN]
        copies = copies.assign(**{PAIR_COLUMN: copies["source_path"].map(pair_of).fillna("")})
    if set(copies["split"]) != {"train"}:
        raise DataError("augmented copies must be train rows; validation and test data are never augmented")
    return pd.concat([table, copies.assign(label=class_labels(copies["class"]))], ignore_index=True)


def fit_model(config: TrainingConfig, table: pd.DataFrame, params: Params,
              strategy: tf.distribute.Strategy) -> tuple[keras.Model, dict]:
    """Build, compile and fit under `strategy`; returns the best epoch's model (by config.monitor) and a
    training record."""
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    # SpecAugment masks are drawn inside tf.data, outside the strategy scope; make_dataset applies them to
    # training batches only.
    spec_augment = augment.make_spec_augment(config.augment) if config.augment.uses_specaugment else None
    cached_images = int(table["split"].isin(["train", "val"]).sum())
    cache = choose_cache(config.cache, cached_images, params.png_shape)
    multi_worker = distribute.is_multi_worker(strategy)

    def dataset(split: str, training: bool):
        def build(batch_size: int, shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
            return make_dataset(split_table(table, split), config.data_dir, batch_size, training, config.seed,
                                image_shape=params.png_shape, augment=spec_augment if training else None,
                                cache=cache, shard=shard)

        if not multi_worker:
            return build(global_batch)  # Keras splits each global batch across the local replicas
        # Every worker reads the same splits.csv and builds its own pipeline over its shard of the file table, by
        # data (every N-th picture of the seeded, identically shuffled table), before any PNG is decoded.
        # tf.distribute's AUTO shard policy would try FILE sharding, find no reader of files (the pictures
        # come from a table of paths), fall back to DATA sharding at the end of the pipeline, and so make every
        # worker decode every picture only to drop (N-1)/N of them. A dataset from a function is never
        # auto-sharded; each pipeline yields per-replica batches, so the global batch stays
        # per-replica batch x all replicas.
        return strategy.distribute_datasets_from_function(lambda context: build(
            context.get_per_replica_batch_size(global_batch),
            (context.input_pipeline_id, context.num_input_pipelines)))

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if config.uses_pairs:
        if multi_worker:
            raise ValueError("pair-set batches (--pair-batches/--pair-loss) run on one machine only")
        train_data, steps_per_epoch = pairs.make_pair_dataset(
            split_table(table, "train"), config.data_dir, config.batch_size, strategy.num_replicas_in_sync,
            config.epochs, config.seed, image_shape=params.png_shape, augment=spec_augment)
    else:
        train_data, steps_per_epoch = dataset("train", True), None
    with strategy.scope():
        model = compile_model(config.model_name, params, config.learning_rate, config.pair_loss,
                              config.pair_weight, config.ema_momentum)
    timer = EpochTimer()
    callbacks, early_stopping = make_callbacks(config, timer, resumable=multi_worker)
    started = time.perf_counter()
    # The pair dataset holds every epoch's own order, so its iterator must run on across epochs.
    history = model.fit(train_data, validation_data=dataset("val", False), epochs=config.epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                        verbose=1 if distribute.is_chief(strategy) else 2,
                        shuffle=False)  # the dataset shuffles itself, seeded
    model = classifier_of(model)
    if multi_worker:
        model = local_copy(model, config.model_name, params)
    n_train = int((table["split"] == "train").sum())
    return model, {"epochs_run": len(history.epoch), "best_epoch": early_stopping.best_epoch + 1,
                   "monitor": config.monitor, "pair_batches": config.uses_pairs, "pair_loss": config.pair_loss,
                   "pair_weight": config.pair_weight if config.pair_loss != "none" else None,
                   "batch_size_per_replica": config.batch_size, "global_batch_size": global_batch,
                   "replicas": strategy.num_replicas_in_sync, "workers": distribute.worker_count(strategy),
                   "strategy": distribute.strategy_name(strategy), "cache": cache, "steps_per_epoch": timer.steps,
                   "mixed_precision": config.mixed_precision, "learning_rate": config.learning_rate,
                   "ema_momentum": config.ema_momentum,
                   "seconds": round(time.perf_counter() - started, 2), "train_images": n_train,
                   **throughput(n_train, timer.train_seconds)}


def local_copy(model: keras.Model, model_name: str, params: Params) -> keras.Model:
    """The trained network outside the cluster: scoring and saving it needs no other worker."""
    copy = build_model(model_name, params)
    copy.set_weights(model.get_weights())
    return copy


def train(config: TrainingConfig) -> dict:
    """Train, calibrate, threshold, evaluate and save; returns the metrics record (also written as JSON).

    In a multi-worker cluster every worker trains; only the chief scores, calibrates and writes the outputs.
    The other workers keep their checkpoints, logs and backups in a hidden folder of their own, which they
    delete at the end, and return a short record.
    """
    # The data checks use no TensorFlow op, so a bad folder fails fast, before the devices are configured.
    params = load_data_params(config.data_dir)
    table = load_split_table(config.data_dir, config.splits_csv)
    check_trainable(table)
    summary = data_summary(table)
    # Rendered before TensorFlow configures its devices; the worker processes start by spawn.
    original_rows = len(table)
    table = with_augmented_copies(table, config, params)
    # Logical devices and the cluster's collective runtime must exist before any other TF op.
    strategy = make_strategy(config.devices, config.strategy)
    print(distribute.describe(strategy), flush=True)
    if config.mixed_precision and not tf.config.list_physical_devices("GPU"):
        print("warning: --mixed-precision is meant for GPUs; this machine has none", flush=True)
    set_seeds(config.seed)
    if not distribute.is_chief(strategy):
        return train_worker(config, table, params, strategy)
    paths = config.output_paths()
    paths["model"].parent.mkdir(parents=True, exist_ok=True)
    model, training = fit_model(config, table, params, strategy)
    training["augmented_train_images"] = len(table) - original_rows
    files = {split: score_files(model, split_table(table, split), config.data_dir,
                                training["global_batch_size"], params.png_shape) for split in ("val", "test")}
    evaluation = evaluate_run(files["val"], files["test"], config.target_fpr)
    if training["best_epoch"] == 1 and training["epochs_run"] > 1:
        evaluation["warnings"].append(f"{config.monitor} was best after epoch 1: the model may have learned little")
    model_store.save_detector(model, paths["model"], params, evaluation["threshold"],
                              calibration=evaluation["calibration"], threshold_rule=evaluation["threshold_rule"],
                              aggregate=AGGREGATE_RULE, data_summary=summary, data_dir=str(config.data_dir),
                              seed=config.seed, training=training, model_name=config.model_name,
                              augment=config.augment.to_dict(), test=evaluation["test"],
                              validation=evaluation["validation"], warnings=evaluation["warnings"])
    _write_scores_csv(files["test"], paths["test_scores"])
    record = {"name": config.run_name, "model_name": config.model_name, "data_dir": str(config.data_dir),
              "augment": config.augment.to_dict(), **evaluation, "training": training, "data_summary": summary,
              "paths": {key: str(path) for key, path in paths.items() if key != "backup"}}
    record["plots"] = write_plots(config, files["test"], evaluation["threshold"], training["best_epoch"])
    model_card.write_model_card(paths["model"])
    atomic_write_text(paths["metrics"], json.dumps(record, indent=2, default=float) + "\n")
    return record


def train_worker(config: TrainingConfig, table: pd.DataFrame, params: Params,
                 strategy: tf.distribute.Strategy) -> dict:
    """A non-chief worker's share: fit with outputs in a hidden folder of its own, then delete the folder.

    The folder's name is fixed per task, so a restarted worker finds its BackupAndRestore state there.
    """
    scratch = Path(config.models_dir) / f".{config.run_name}.{distribute.task_name(strategy)}"
    scratch.mkdir(parents=True, exist_ok=True)
    _, training = fit_model(dataclasses.replace(config, models_dir=scratch, plots_dir=scratch), table, params,
                            strategy)
    shutil.rmtree(scratch, ignore_errors=True)
    return {"role": "worker", "task": distribute.task_name(strategy), "training": training}


def write_plots(config: TrainingConfig, test_files: pd.DataFrame, threshold: float,
                best_epoch: int) -> dict[str, str]:
    paths = config.output_paths()
    plots = {"history": reports.plot_history(paths["history"], paths["history_plot"], config.monitor, best_epoch)}
    plots.update(reports.write_evaluation_plots(test_files["label"], test_files["p_fake"], threshold,
                                                config.plots_dir, prefix=f"{config.run_name}_",
                                                title=f"{config.run_name}, test files"))
    return {key: str(path) for key, path in plots.items()}


def format_summary(record: dict) -> str:
    """A few lines for the terminal: where things are and the headline test numbers."""
    training = record["training"]
    if record.get("role") == "worker":
        return (f"{record['task']} finished {training['epochs_run']} epoch(s), steps per epoch "
                f"{training['steps_per_epoch']}; the chief writes the model and reports")
    test = record["test"]
    lines = [f"model:   {record['paths']['model']} (+ .json metadata, {record['paths']['card']} model card)",
             f"metrics: {record['paths']['metrics']}; per-file test scores: {record['paths']['test_scores']}",
             f"plots:   {', '.join(record['plots'].values())}",
             f"test ({test['n_real']} real, {test['n_fake']} fake files) at the validation threshold "
             f"{record['threshold']:.4g} ({record['threshold_rule']}): "
             f"accuracy {test['at_threshold']['accuracy']:.3f}, "
             f"balanced accuracy {test['at_threshold']['balanced_accuracy']:.3f}"]
    if "eer" in test:
        lines.append(f"test EER {test['eer']:.3f}, ROC AUC {test['roc_auc']:.3f}")
    lines.append(f"training: {training['epochs_run']} epoch(s), best {training['best_epoch']}, "
                 f"{training['replicas']} replica(s), steps per epoch {training['steps_per_epoch']}, "
                 f"{training['images_per_second']:.1f} images/s"
                 + (f" ({training['steady_images_per_second']:.1f} after epoch 1)"
                    if "steady_images_per_second" in training else ""))
    lines += [f"warning: {warning}" for warning in record["warnings"]]
    return "\n".join(lines)
