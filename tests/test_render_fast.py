"""The render fast path gives today's pictures: our STFT equals librosa's bit for bit, our PNG decodes losslessly."""
import io

import librosa
import numpy as np
from PIL import Image

from deepfake_detector.data import features
from deepfake_detector.params import Params


def test_stft_equals_librosa_bit_for_bit():
    rng = np.random.default_rng(3)
    for params in (Params(), Params(n_fft=1024, hop_length=256, window_s=1.0)):
        for shape in ((params.window_samples,), (3, params.window_samples), (5000,)):
            segments = (0.3 * rng.standard_normal(shape)).astype(np.float32)
            ours = features.stft(segments, params)
            theirs = librosa.stft(segments, n_fft=params.n_fft, hop_length=params.hop_length)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours, theirs)


def test_png_decodes_to_the_same_pixels_with_pillow(tmp_path):
    rng = np.random.default_rng(0)
    image = features.magma_lut()[rng.integers(0, 256, size=(128, 173))]
    path = tmp_path / "picture.png"
    features.save_png(image, path)
    np.testing.assert_array_equal(features.load_png(path), image)
    with Image.open(io.BytesIO(features.encode_png(image[:5, :7]))) as small:
        assert small.mode == "RGB" and small.size == (7, 5)
        np.testing.assert_array_equal(np.asarray(small), image[:5, :7])


def test_rendered_picture_is_unchanged_by_the_fast_path(monkeypatch):
    # The same recipe with librosa's own STFT put back: the fast path must not move a single pixel.
    params = Params()
    t = np.arange(int(5.5 * params.sample_rate)) / params.sample_rate
    waveform = (0.4 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.01 * np.cos(7 * t)).astype(np.float32)
    fast, _ = features.waveform_to_images(waveform, params)
    monkeypatch.setattr(features, "stft", lambda segments, params: librosa.stft(
        segments, n_fft=params.n_fft, hop_length=params.hop_length))
    reference, _ = features.waveform_to_images(waveform, params)
    assert len(fast) == 2
    np.testing.assert_array_equal(fast, reference)
