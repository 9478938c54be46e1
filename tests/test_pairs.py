"""Pair sets: the sampler keeps a real clip and its copies in one replica's batch; the contrastive pair loss has
the value of its formula, changes the training step, and trains under MirroredStrategy."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_detector.model import pairs
from deepfake_detector.model.dataset import DataError, load_split_table
from synthetic_spectrograms import make_spectrogram_folder

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRAIN_CNN = PROJECT_ROOT / "src" / "train_cnn.py"


def pair_table(n_sets: int = 30, n_single: int = 0, seed: int = 0) -> pd.DataFrame:
    """Pair sets of 2-6 rows (a real and 1-5 copies) and unpaired rows."""
    rng = np.random.default_rng(seed)
    pair = [f"set{index}" for index in range(n_sets) for _ in range(rng.integers(2, 7))] + [""] * n_single
    return pd.DataFrame({"pair": pair})


def chunks_holding_split_sets(order: np.ndarray, table: pd.DataFrame, capacity: int) -> list[int]:
    """Indices of the capacity-sized chunks of `order` that hold only part of some pair set."""
    pair = table["pair"].to_numpy()
    sizes = table.loc[table["pair"] != "", "pair"].value_counts()
    broken = []
    for start in range(0, len(order), capacity):
        in_chunk = pd.Series(pair[order[start:start + capacity]])
        counts = in_chunk[in_chunk != ""].value_counts()
        if (counts != sizes[counts.index]).any():
            broken.append(start // capacity)
    return broken


def test_pair_sets_land_whole_in_one_per_replica_batch():
    table = pair_table(n_single=100)  # enough unpaired rows to fill every gap
    units = pairs.pair_units(table)
    assert sorted(len(unit) for unit in units if len(unit) > 1) == sorted(table["pair"][table["pair"] != ""]
                                                                         .value_counts())
    rng = np.random.default_rng(7)
    first, second = pairs.pack_units(units, 8, rng), pairs.pack_units(units, 8, rng)
    for order in (first, second):
        assert sorted(order) == list(range(len(table)))  # every row once per epoch
        assert chunks_holding_split_sets(order, table, 8) == []
    assert not np.array_equal(first, second)  # a new order every epoch
    np.testing.assert_array_equal(pairs.pack_units(units, 8, np.random.default_rng(7)), first)  # seeded
    # Without the sampler's layout (a plain shuffle of rows) pair sets are torn apart: the check can fail.
    shuffled = np.random.default_rng(7).permutation(len(table))
    assert len(chunks_holding_split_sets(shuffled, table, 8)) > 5


def test_without_unpaired_rows_to_fill_gaps_only_some_sets_straddle():
    table = pair_table()
    order = pairs.pack_units(pairs.pair_units(table), 8, np.random.default_rng(0))
    assert sorted(order) == list(range(len(table)))
    # Sets stay contiguous, so each crosses at most one boundary: far fewer torn chunks than chunks.
    assert len(chunks_holding_split_sets(order, table, 8)) < len(order) / 8


def test_pair_batches_need_the_pair_column():
    with pytest.raises(DataError, match="no 'pair' column"):
        pairs.pair_units(pd.DataFrame({"png_path": ["a.png"]}))


def test_contrastive_loss_has_the_value_of_its_formula():
    from deepfake_detector.model.pair_loss import supervised_contrastive_loss

    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    labels = np.array([0, 0, 1])
    # Anchors 0 and 1: positive similarity 1, negative 0 (temperature 1); anchor 2 has no positive.
    expected = np.log(1 + np.exp(-1.0))
    assert float(supervised_contrastive_loss(embeddings, labels, 1.0)) == pytest.approx(expected, rel=1e-5)
    mixed = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)  # class 0 split, class 1 near one
    assert float(supervised_contrastive_loss(mixed, labels, 1.0)) > expected


@pytest.mark.slow
def test_pair_loss_changes_the_training_step_and_weight_zero_is_plain_keras():
    import keras

    from deepfake_detector.model import training
    from deepfake_detector.model.pair_loss import classifier_of
    from tiny_detector import TINY_PARAMS

    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 255, size=(8, *TINY_PARAMS.png_shape), dtype=np.uint8)
    labels = np.array([0, 1, 1, 0, 1, 1, 0, 0], dtype=np.float32)

    def weights_after_one_step(pair_loss: str, pair_weight: float) -> list[np.ndarray]:
        keras.utils.set_random_seed(0)
        model = training.compile_model("baseline", TINY_PARAMS, 1e-3, pair_loss, pair_weight)
        model.train_on_batch(pictures, labels)
        return [np.asarray(weight) for weight in classifier_of(model).weights]

    plain = weights_after_one_step("none", 0.5)
    for expected, got in zip(plain, weights_after_one_step("contrastive", 0.0)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)  # our train_step == Keras' own
    paired = weights_after_one_step("contrastive", 1.0)
    assert any(not np.allclose(got, expected, rtol=1e-5, atol=1e-6) for expected, got in zip(plain, paired))
    # The term acts on the embedding, not on the final layer: its weights move exactly as without it.
    np.testing.assert_allclose(paired[-1], plain[-1], rtol=1e-5, atol=1e-6)  # p_fake bias


@pytest.mark.slow
def test_replicas_of_mirrored_strategy_get_whole_pair_sets(tmp_path):
    data_dir = make_spectrogram_folder(tmp_path, files_per_split={"train": 6}, paired=True)
    table = load_split_table(data_dir).reset_index(drop=True)
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "tests" / "pair_batches_script.py"), str(data_dir)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and len(report["batches"]) == report["steps"]
    seen = [row for batch in report["batches"] for replica in batch for row in replica]
    assert sorted(seen) == list(range(len(table)))
    sizes = table.loc[table["pair"] != "", "pair"].value_counts()
    assert (sizes > 1).sum() >= 3  # real + copy sets exist (one real has two windows: a set of 3 or 4)
    for batch in report["batches"]:
        for replica in batch:
            assert len(replica) <= 4
            counts = table.loc[replica, "pair"][lambda pair: pair != ""].value_counts()
            assert (counts == sizes[counts.index]).all(), (replica, batch)


@pytest.mark.slow
def test_cli_trains_with_the_pair_loss_on_two_replicas(tmp_path):
    from deepfake_detector.model.model_store import load_detector

    data_dir = make_spectrogram_folder(tmp_path / "data", paired=True)
    command = [sys.executable, str(TRAIN_CNN), "--data", str(data_dir), "--devices", "2", "--epochs", "2",
               "--batch-size", "4", "--model", "compact", "--pair-loss", "contrastive", "--name", "paired",
               "--models-dir", str(tmp_path / "models"), "--plots-dir", str(tmp_path / "plots")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((tmp_path / "models" / "paired.json").read_text())
    training = metadata["training"]
    assert training["replicas"] == 2 and training["global_batch_size"] == 8
    assert training["pair_loss"] == "contrastive" and training["pair_batches"] and training["epochs_run"] == 2
    history = pd.read_csv(tmp_path / "models" / "paired_history.csv")
    assert np.isfinite(history["loss"]).all() and (history["loss"] > 0).all()
    detector = load_detector(tmp_path / "models" / "paired.keras")  # the classifier alone, not the trainer
    assert detector.model.name == "compact" and detector.metadata["architecture"] == "compact"
    assert sorted(path.name for path in (tmp_path / "models").glob("*.keras")) == ["paired.keras"]  # one copy


def test_cli_refuses_a_pair_loss_without_pair_ids(tmp_path):
    data_dir = make_spectrogram_folder(tmp_path / "data")
    result = subprocess.run([sys.executable, str(TRAIN_CNN), "--data", str(data_dir), "--pair-loss", "contrastive"],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "'pair' column" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
