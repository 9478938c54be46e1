"""Split table checks and the tf.data pipeline: pinned labels, uint8 batches, seeded training shuffle."""
import numpy as np
import pandas as pd
import pytest

from deepfake_detector.model.dataset import DataError, check_trainable, load_split_table, make_dataset
from deepfake_detector.data.features import load_png
from deepfake_detector.params import Params
from synthetic_spectrograms import make_spectrogram_folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_spectrogram_folder(tmp_path_factory.mktemp("spectrograms"))


def _collect(dataset):
    images, labels = zip(*[(batch_images.numpy(), batch_labels.numpy()) for batch_images, batch_labels in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_split_table_gets_fake_as_label_one(data_dir):
    table = load_split_table(data_dir)
    assert set(table["split"]) == {"train", "val", "test"}
    assert (table["label"] == (table["class"] == "fake").astype(int)).all()


def test_labels_follow_class_names_not_folder_order(data_dir):
    table = load_split_table(data_dir)
    # Folder listings put 'fake' before 'real'; put real first too, and labels must not change with order.
    for ordered in (table.sort_values("class"), table.sort_values("class", ascending=False)):
        _, labels = _collect(make_dataset(ordered, data_dir, batch_size=4, training=False, seed=0))
        np.testing.assert_array_equal(labels, (ordered["class"] == "fake").to_numpy(dtype=np.float32))


def test_batches_are_the_png_pixels_as_uint8(data_dir):
    table = load_split_table(data_dir).query("split == 'val'")
    shape = Params().png_shape
    dataset = make_dataset(table, data_dir, batch_size=3, training=False, seed=0, image_shape=shape)
    first_images, _ = next(iter(dataset))
    assert first_images.dtype.name == "uint8"
    assert tuple(first_images.shape) == (3, *shape)
    images, _ = _collect(dataset)
    expected = np.stack([load_png(data_dir / path) for path in table["png_path"]])
    np.testing.assert_array_equal(images, expected)


def test_training_shuffle_is_seeded_and_evaluation_keeps_table_order(data_dir):
    table = load_split_table(data_dir).query("split == 'train'")
    image_sums = {}
    for name, seed, training in (("a", 1, True), ("b", 1, True), ("c", 2, True), ("eval", 1, False)):
        images, _ = _collect(make_dataset(table, data_dir, batch_size=4, training=training, seed=seed))
        image_sums[name] = images.reshape(len(images), -1).sum(axis=1)
    table_order = np.array([load_png(data_dir / path).sum() for path in table["png_path"]])
    np.testing.assert_array_equal(image_sums["a"], image_sums["b"])
    assert not np.array_equal(image_sums["a"], image_sums["c"])
    assert not np.array_equal(image_sums["a"], table_order)
    np.testing.assert_array_equal(image_sums["eval"], table_order)


def test_augment_runs_only_when_training(data_dir):
    table = load_split_table(data_dir).query("split == 'val'")

    def blackout(image, label):
        return image * 0, label

    train_images, _ = _collect(make_dataset(table, data_dir, 4, training=True, seed=0, augment=blackout))
    eval_images, _ = _collect(make_dataset(table, data_dir, 4, training=False, seed=0, augment=blackout))
    assert train_images.max() == 0
    assert eval_images.max() > 0


def test_missing_png_and_missing_params_are_reported(data_dir, tmp_path):
    table = pd.read_csv(data_dir / "splits.csv")
    broken = make_spectrogram_folder(tmp_path / "broken", files_per_split={"train": 1})
    table.head(1).assign(png_path="train/real/absent.png").to_csv(broken / "splits.csv", index=False)
    with pytest.raises(DataError, match="missing"):
        load_split_table(broken)
    (broken / "params.json").unlink()
    with pytest.raises(DataError, match="params.json"):
        load_split_table(broken)


def test_training_needs_both_classes_in_train_and_val_and_a_test_split(data_dir):
    table = load_split_table(data_dir)
    check_trainable(table)
    with pytest.raises(DataError, match="val split has no real files"):
        check_trainable(table[~((table["split"] == "val") & (table["class"] == "real"))])
    with pytest.raises(DataError, match="no 'test' rows"):
        check_trainable(table[table["split"] != "test"])


def test_another_split_table_over_the_same_pictures(data_dir, tmp_path):
    table = pd.read_csv(data_dir / "splits.csv")
    # A fold that moves the test files into validation, stored outside the data folder.
    fold = table.assign(split=table["split"].replace({"test": "val"}))
    fold.to_csv(tmp_path / "fold.csv", index=False)
    loaded = load_split_table(data_dir, tmp_path / "fold.csv")
    assert set(loaded["split"]) == {"train", "val"} and len(loaded) == len(table)
    assert set(load_split_table(data_dir)["split"]) == {"train", "val", "test"}  # the folder's own table is kept
    with pytest.raises(DataError, match="missing"):
        load_split_table(data_dir, tmp_path / "absent.csv")
