"""The render fast path: our single-precision STFT stays within float32 rounding of librosa's float64 one and
moves almost no pixel; our PNG decodes losslessly."""
import io

import librosa
import numpy as np
from PIL import Image

from deepfake_detector.data import features
from deepfake_detector.params import Params


def test_stft_matches_librosa_to_single_precision():
    rng = np.random.default_rng(3)
    for params in (Params(), Params(n_fft=1024, hop_length=256, window_s=1.0)):
        for shape in ((params.window_samples,), (3, params.window_samples), (5000,)):
            segments = (0.3 * rng.standard_normal(shape)).astype(np.float32)
            ours = features.stft(segments, params)
            theirs = librosa.stft(segments, n_fft=params.n_fft, hop_length=params.hop_length)
            assert ours.dtype == theirs.dtype == np.complex64 and ours.shape == theirs.shape
            # float32 FFT rounding: measured 1.6e-7 of the peak magnitude; a framing or window error would be O(1).
            assert np.abs(ours - theirs).max() <= 2e-6 * np.abs(theirs).max()


def test_png_decodes_to_the_same_pixels_with_pillow(tmp_path):
    rng = np.random.default_rng(0)
    image = features.magma_lut()[rng.integers(0, 256, size=(128, 173))]
    path = tmp_path / "picture.png"
    features.save_png(image, path)
    np.testing.assert_array_equal(features.load_png(path), image)
    with Image.open(io.BytesIO(features.encode_png(image[:5, :7]))) as small:
        assert small.mode == "RGB" and small.size == (7, 5)
        np.testing.assert_array_equal(np.asarray(small), image[:5, :7])


def test_single_precision_moves_at_most_one_colour_step_on_a_tiny_share_of_pixels(monkeypatch):
    # The same recipe with librosa's float64 STFT put back (what the renderer used before the fast path).
    # bench/render_precision.py measures the same on real clips, with the model score change.
    params = Params()
    t = np.arange(int(5.5 * params.sample_rate)) / params.sample_rate
    rng = np.random.default_rng(0)
    chirp = 0.4 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.01 * np.cos(7 * t)
    noisy = chirp * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.003 * rng.standard_normal(len(t))
    for waveform in (chirp.astype(np.float32), noisy.astype(np.float32)):
        fast, _ = features.waveform_to_images(waveform, params)
        with monkeypatch.context() as patch:
            patch.setattr(features, "stft", lambda segments, params: librosa.stft(
                segments, n_fft=params.n_fft, hop_length=params.hop_length))
            reference, _ = features.waveform_to_images(waveform, params)
        assert fast.shape == reference.shape and len(fast) == 2
        steps = np.abs(features.picture_levels(fast) - features.picture_levels(reference))
        changed = steps[(fast != reference).any(axis=-1)]
        assert len(changed) <= 0.001 * fast[..., 0].size
        assert (changed == 1).all()  # every changed pixel moved by exactly one colour-map step


def test_band_blocks_give_the_full_filter_bank_product():
    rng = np.random.default_rng(1)
    for params in (Params(), Params(scale="linear"), Params(n_mels=60)):
        spectrum = features.stft((0.3 * rng.standard_normal((2, params.window_samples))).astype(np.float32), params)
        bin_power = np.abs(spectrum.astype(np.complex128)) ** 2
        full = features.band_basis(params).astype(np.float64) @ bin_power
        blocks = np.zeros_like(full)
        for rows, columns, block in features._band_blocks(params):
            blocks[..., rows, :] = block @ bin_power[..., columns, :]
        np.testing.assert_allclose(blocks, full, rtol=1e-5, atol=1e-7 * full.max())
        assert sum(block.size for _, _, block in features._band_blocks(params)) < features.band_basis(params).size
