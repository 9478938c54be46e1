"""Training: threshold and summary helpers, and a 2-epoch smoke run under MirroredStrategy on 2 logical CPUs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_tone
from deepfake_detector.data import spectrograms
from deepfake_detector.report import metrics, reports
from deepfake_detector.data.augment import AugmentConfig
from deepfake_detector.model.dataset import SPLIT_COLUMNS, data_summary, load_split_table
from deepfake_detector.params import Params
from deepfake_detector.model.training import choose_threshold, threshold_at_fpr
from synthetic_spectrograms import make_spectrogram_folder

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRAIN_CNN = PROJECT_ROOT / "src" / "train_cnn.py"


def test_eer_threshold_lies_between_validation_scores():
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    threshold, rule = choose_threshold(labels, scores)
    assert rule == "validation EER"
    assert 0.3 < threshold < 0.7  # halfway on the logit scale, not on the lowest fake score
    assert metrics.threshold_metrics(labels, scores, threshold)["accuracy"] == 1.0


def test_target_fpr_threshold_keeps_false_positives_below_target():
    labels = np.r_[np.zeros(10), np.ones(10)]
    scores = np.r_[np.linspace(0.0, 0.9, 10), np.linspace(0.5, 1.0, 10)]
    for target in (0.0, 0.1, 0.3):
        threshold, rule = choose_threshold(labels, scores, target_fpr=target)
        false_positive_rate = np.mean(scores[labels == 0] >= threshold)
        assert false_positive_rate <= target and f"<= {target:g}" in rule
        # The lowest such threshold on the DET curve: one step lower would exceed the target.
        assert np.mean(scores[labels == 0] >= threshold_at_fpr(labels, scores, target)) <= target


def test_data_summary_counts_files_and_images(tmp_path):
    table = load_split_table(make_spectrogram_folder(tmp_path, files_per_split={"train": 3, "test": 1}))
    summary = data_summary(table)
    # Train file 2 of each class is 1.5 windows long, so it gives two pictures.
    assert summary["train"]["real"] == {"files": 3, "images": 4}
    assert summary["train"]["fake"] == {"files": 3, "images": 4}
    assert summary["test"]["fake"] == {"files": 1, "images": 1}


def test_cli_reports_a_bad_folder_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(TRAIN_CNN), "--data", str(tmp_path)], capture_output=True,
                            text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: ") and "params.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data_dir = make_spectrogram_folder(root / "spectrograms")
    command = [sys.executable, str(TRAIN_CNN), "--data", str(data_dir), "--devices", "2", "--epochs", "2",
               "--batch-size", "4", "--name", "smoke", "--models-dir", str(root / "models"),
               "--plots-dir", str(root / "plots")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, data_dir, result.stdout


@pytest.mark.slow
def test_smoke_run_uses_two_replicas_and_writes_every_output(trained):
    root, _, stdout = trained
    assert "MirroredStrategy: 1 worker, 2 replicas on" in stdout
    for name in ("smoke.keras", "smoke.json", "smoke.md", "smoke_metrics.json", "smoke_history.csv",
                 "smoke_test_scores.csv"):
        assert (root / "models" / name).is_file(), name
    assert len(list((root / "models").glob("*.keras"))) == 1  # one copy of the model, no checkpoint beside it
    for plot in ("history", "confusion", "roc", "pr", "scores"):
        assert (root / "plots" / f"smoke_{plot}.png").is_file(), plot
    assert "test EER" in stdout and "images/s" in stdout


@pytest.mark.slow
def test_smoke_run_metadata_and_metrics(trained):
    root, data_dir, _ = trained
    metadata = json.loads((root / "models" / "smoke.json").read_text())
    assert metadata["params"] == json.loads((data_dir / "params.json").read_text())
    assert metadata["threshold_rule"] == "validation EER" and 0.0 < metadata["threshold"] < 1.0
    assert metadata["calibration"] is None or metadata["calibration"]["method"] == "platt"
    assert metadata["data_summary"]["test"]["real"] == {"files": 2, "images": 2}
    assert metadata["training"]["replicas"] == 2 and metadata["training"]["global_batch_size"] == 8
    assert metadata["training"]["epochs_run"] == 2 and metadata["training"]["images_per_second"] > 0
    record = json.loads((root / "models" / "smoke_metrics.json").read_text())
    assert record["threshold"] == metadata["threshold"]
    assert record["test"]["n"] == 4 and record["validation"]["n"] == 4
    assert record["test"]["at_threshold"]["threshold"] == record["threshold"]
    assert "test_raw_at_0.5" in record and "test_eer_threshold_shift" in record
    assert any("only 2 real files" in warning for warning in record["warnings"])
    history = pd.read_csv(root / "models" / "smoke_history.csv")
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc"} <= set(history.columns)
    assert history["epoch"].tolist() == [1, 2]  # counted like the console, the plot and best_epoch
    assert metadata["training"]["best_epoch"] == reports.best_epoch(history, "val_auc")
    assert metadata["test"] == record["test"] and metadata["trained_at"]


@pytest.mark.slow
def test_smoke_run_writes_a_model_card_from_its_metadata(trained):
    root, data_dir, _ = trained
    card = (root / "models" / "smoke.md").read_text()
    metadata = json.loads((root / "models" / "smoke.json").read_text())
    test, train = metadata["test"], metadata["data_summary"]["train"]
    assert card.startswith("# Model card: smoke")
    for section in ("Intended use", "Training data", "Parameters", "Decision threshold", "In-domain figures",
                    "Cross-dataset figures", "Known failure cases"):
        assert f"## {section}" in card
    low, high = test["eer_95ci"]
    assert f"| test split | 2/2 | {test['eer']:.3f} ({low:.3f}-{high:.3f}) |" in card
    assert (f"| train | {train['real']['files']} ({train['real']['images']}) | {train['fake']['files']} "
            f"({train['fake']['images']}) |") in card
    assert "None yet" in card and f"kept: epoch" not in card and f"weights of epoch {metadata['training']['best_epoch']}" in card


@pytest.mark.slow
def test_reloaded_model_reproduces_the_saved_test_scores(trained):
    from deepfake_detector.data.features import load_png
    from deepfake_detector.model.inference import aggregate
    from deepfake_detector.model.model_store import load_detector

    root, data_dir, _ = trained
    detector = load_detector(root / "models" / "smoke.keras")
    saved = pd.read_csv(root / "models" / "smoke_test_scores.csv")
    windows = load_split_table(data_dir).query("split == 'test'")
    rescored = []
    for source_path, rows in windows.groupby("source_path", sort=False):
        pictures = np.stack([load_png(data_dir / path) for path in rows["png_path"]])
        raw = aggregate(detector.model.predict(pictures, verbose=0).ravel(), "mean")
        rescored.append({"source_path": source_path, "p_fake_raw": raw, "windows": len(rows),
                         "p_fake": float(detector.calibrate(np.array([raw]))[0])})
    rescored = pd.DataFrame(rescored).set_index("source_path").loc[saved["source_path"]]
    np.testing.assert_array_equal(rescored["windows"], saved["windows"])
    np.testing.assert_allclose(rescored["p_fake_raw"], saved["p_fake_raw"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rescored["p_fake"], saved["p_fake"], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- augmentation

SHORT_PARAMS = Params(window_s=1.0, hop_s=1.0)  # (128, 44, 3) pictures keep the runs quick


def make_audio_data_folder(root: Path) -> Path:
    """Tones (real) and noisy tones (fake) rendered by spectrograms.generate; per class 3 train, 2 val, 1 test
    files of 1.2 s (two windows each). Augmented copies need real audio sources, hence not the PNG-only folder."""
    for class_name in ("real", "fake"):
        for index in range(6):
            write_tone(root / "audio" / class_name / f"{class_name}{index}.wav", 1.2, 300 + 100 * index,
                       noise=0.2 if class_name == "fake" else 0.0, seed=index)
    data_dir = root / "data"
    spectrograms.generate(root / "audio", data_dir, SHORT_PARAMS, progress=False)
    table = pd.read_csv(data_dir / "manifest.csv", dtype={"source_sha256": str})
    index = table["source_path"].str.extract(r"(\d)\.wav$")[0].astype(int)
    table["split"] = np.select([index < 3, index < 5], ["train", "val"], "test")
    table["group"] = [Path(path).stem for path in table["source_path"]]
    table[list(SPLIT_COLUMNS)].to_csv(data_dir / "splits.csv", index=False)
    return data_dir


def test_augmented_copies_are_appended_to_train_only(tmp_path):
    from deepfake_detector.model.training import TrainingConfig, with_augmented_copies

    data_dir = make_audio_data_folder(tmp_path)
    table = load_split_table(data_dir)
    config = TrainingConfig(data_dir=data_dir, augment=AugmentConfig(augmentations=("noise", "gain"), copies=2))
    grown = with_augmented_copies(table, config, SHORT_PARAMS)
    for split in ("val", "test"):
        pd.testing.assert_frame_equal(grown[grown["split"] == split], table[table["split"] == split])
    added = grown.iloc[len(table):]
    assert len(added) == 2 * (table["split"] == "train").sum() and set(added["split"]) == {"train"}
    assert (added["label"] == (added["class"] == "fake")).all()
    assert set(added["source_path"]) == set(table.loc[table["split"] == "train", "source_path"])
    # Without augmentation the table is returned as it is.
    assert with_augmented_copies(table, TrainingConfig(data_dir=data_dir), SHORT_PARAMS) is table


def test_spec_augment_changes_training_batches_only(tmp_path):
    from deepfake_detector.data.augment import make_spec_augment
    from deepfake_detector.model.dataset import make_dataset
    from deepfake_detector.data.features import load_png

    data_dir = make_audio_data_folder(tmp_path)
    table = load_split_table(data_dir).query("split == 'val'")
    spec_augment = make_spec_augment(AugmentConfig(augmentations=("specaugment",), time_mask_max=10))
    pngs = np.stack([load_png(data_dir / path) for path in table["png_path"]])

    def pixels(training):
        dataset = make_dataset(table, data_dir, 4, training=training, seed=0, augment=spec_augment)
        return np.concatenate([images.numpy() for images, _ in dataset])

    np.testing.assert_array_equal(pixels(training=False), pngs)
    masked = pixels(training=True)
    assert not np.array_equal(np.sort(masked.reshape(len(masked), -1).sum(axis=1)),
                              np.sort(pngs.reshape(len(pngs), -1).sum(axis=1)))


@pytest.mark.slow
def test_cli_augment_grows_train_only_and_records_the_augmentation(tmp_path):
    data_dir = make_audio_data_folder(tmp_path)
    command = [sys.executable, str(TRAIN_CNN), "--data", str(data_dir), "--model", "compact", "--epochs", "1",
               "--batch-size", "4", "--name", "aug", "--models-dir", str(tmp_path / "models"),
               "--plots-dir", str(tmp_path / "plots"), "--augment", "noise,gain,specaugment",
               "--augment-copies", "2", "--seed", "7"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((tmp_path / "models" / "aug.json").read_text())
    assert metadata["augment"]["augmentations"] == ["noise", "gain", "specaugment"]
    assert metadata["augment"]["copies"] == 2 and metadata["augment"]["seed"] == 7
    # 6 train files x 2 windows, plus 2 copies of each: the table grew in train only.
    assert metadata["training"]["train_images"] == 12 * 3 and metadata["training"]["augmented_train_images"] == 24
    assert metadata["data_summary"]["val"]["real"] == {"files": 2, "images": 4}
    record = json.loads((tmp_path / "models" / "aug_metrics.json").read_text())
    assert record["augment"] == metadata["augment"]
    assert record["validation"]["n"] == 4 and record["test"]["n"] == 2  # files, as without augmentation


def test_cli_rejects_an_unknown_augmentation_in_one_line(tmp_path):
    data_dir = make_audio_data_folder(tmp_path)
    result = subprocess.run([sys.executable, str(TRAIN_CNN), "--data", str(data_dir), "--augment", "wobble"],
                            capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "wobble" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_strategy_after_tensorflow_started_keeps_its_devices_or_says_why():
    # A benchmark that scores reused models before training a new one starts TensorFlow first.
    code = ("import tensorflow as tf\n"
            "from deepfake_detector.model.training import make_strategy\n"
            "tf.constant(1.0) + 1.0\n"
            "print(make_strategy(1).num_replicas_in_sync)\n"
            "try:\n    make_strategy(2)\nexcept RuntimeError as error:\n    print('refused:', error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1] / "src")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "1" and lines[-1].startswith("refused: cannot split the CPU into 2 devices")


def test_epoch_timer_counts_steps_and_times_epochs_with_or_without_validation():
    import keras

    from deepfake_detector.model.training import EpochTimer

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((8, 3), "float32"), np.zeros(8, "float32")
    for validation in ({}, {"validation_data": (x, y)}):
        timer = EpochTimer()
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[timer], **validation)
        assert timer.steps == [2, 2]
        assert len(timer.train_seconds) == 2 and all(seconds > 0 for seconds in timer.train_seconds)


@pytest.mark.parametrize("momentum", [None, 0.999999])
def test_weight_average_is_what_early_stopping_keeps(tmp_path, momentum):
    import keras

    from deepfake_detector.model.training import EpochTimer, TrainingConfig, compile_model, make_callbacks

    params = Params()
    keras.utils.set_random_seed(0)
    model = compile_model("compact", params, learning_rate=1e-2, ema_momentum=momentum)
    initial = [weight.numpy().copy() for weight in model.trainable_weights]
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (16, *params.png_shape), dtype=np.uint8)
    labels = np.tile([0.0, 1.0], 8).astype("float32")
    config = TrainingConfig(models_dir=tmp_path, ema_momentum=momentum, patience=5)
    callbacks, early_stopping = make_callbacks(config, EpochTimer())
    model.fit(pictures, labels, validation_data=(pictures, labels), epochs=3, batch_size=4, verbose=0,
              callbacks=callbacks)
    moved = max(float(np.abs(weight.numpy() - start).max()) for weight, start in zip(model.trainable_weights, initial))
    # Adam moves each weight by about the learning rate per step. Keras starts the average at the first step's
    # weights; one that then forgets almost nothing stays there, so the model early stopping restored (and
    # training saves) is one step from the start, while the raw weights of the best epoch are 4 or more steps away.
    if momentum is None:
        assert moved > 3e-2, moved
    else:
        assert moved < 1.1e-2, moved
    with pytest.raises(ValueError, match="momentum must lie between 0 and 1"):
        make_callbacks(TrainingConfig(models_dir=tmp_path, ema_momentum=1.0), EpochTimer())
