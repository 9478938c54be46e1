"""Deepfake-speech detector: magma mel-spectrogram pictures classified by a tf.keras CNN."""
__version__ = "0.1.0"
