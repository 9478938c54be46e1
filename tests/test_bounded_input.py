"""Bounded-memory input: cache modes give the same pictures, the file table is reshuffled every epoch (seeded),
and worker shards of an epoch cover the split exactly once."""
import numpy as np
import pytest

from deepfake_detector.model.dataset import choose_cache, load_split_table, make_dataset
from deepfake_detector.params import Params
from synthetic_spectrograms import make_spectrogram_folder

SHAPE = Params().png_shape
PICTURE_BYTES = int(np.prod(SHAPE))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_spectrogram_folder(tmp_path_factory.mktemp("spectrograms"))


def fingerprints(dataset):
    """One number per picture (its pixel sum) in the order the dataset yields them, and the labels."""
    sums, labels = [], []
    for images, batch_labels in dataset:
        sums += list(images.numpy().reshape(len(images), -1).sum(axis=1))
        labels += list(batch_labels.numpy())
    return np.array(sums), np.array(labels)


def test_auto_cache_keeps_ram_only_when_the_pictures_fit():
    assert choose_cache("auto", 1000, SHAPE, available_bytes=4 * 1000 * PICTURE_BYTES) == "memory"
    assert choose_cache("auto", 1000, SHAPE, available_bytes=4 * 1000 * PICTURE_BYTES - 1) == "none"
    assert choose_cache("disk", 10, SHAPE, available_bytes=10 ** 12) == "disk"
    with pytest.raises(ValueError, match="unknown cache mode"):
        choose_cache("swap", 10, SHAPE)


@pytest.mark.parametrize("cache", ["none", "disk"])
def test_streamed_and_disk_pictures_equal_the_memory_cache(data_dir, cache, tmp_path):
    table = load_split_table(data_dir).query("split == 'train'")
    options = dict(image_shape=SHAPE, cache_dir=tmp_path)
    expected = fingerprints(make_dataset(table, data_dir, 4, False, 0, cache="memory", **options))
    got = fingerprints(make_dataset(table, data_dir, 4, False, 0, cache=cache, **options))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    if cache == "disk":
        assert len(list(tmp_path.glob("pictures-*.npy"))) == 1


def test_file_table_is_reshuffled_every_epoch_with_a_seed(data_dir):
    table = load_split_table(data_dir).query("split == 'train'")
    table_sums, _ = fingerprints(make_dataset(table, data_dir, 4, False, 0, cache="none"))
    first = make_dataset(table, data_dir, 4, True, seed=5, cache="none")
    epoch1, epoch2 = fingerprints(first)[0], fingerprints(first)[0]
    again = fingerprints(make_dataset(table, data_dir, 4, True, seed=5, cache="none"))[0]
    np.testing.assert_array_equal(epoch1, again)  # seeded
    assert not np.array_equal(epoch1, epoch2)  # a new order every epoch
    for epoch in (epoch1, epoch2):  # every picture exactly once per epoch
        np.testing.assert_array_equal(np.sort(epoch), np.sort(table_sums))


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_worker_shards_cover_the_split_exactly_once(data_dir, cache):
    table = load_split_table(data_dir).query("split == 'train'")
    table_sums, _ = fingerprints(make_dataset(table, data_dir, 4, False, 0, cache=cache))
    shards = [fingerprints(make_dataset(table, data_dir, 2, True, 7, cache=cache, shard=(index, 3)))[0]
              for index in range(3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(table_sums))
