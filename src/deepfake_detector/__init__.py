"""Deepfake-speech detector: magma mel-spectrogram pictures classified by a tf.keras CNN.

    from deepfake_detector import Detector
    detector = Detector.load("models/compact_cmn.keras")
    print(detector.predict("clip.wav"))

Importing the package is cheap: TensorFlow loads only when a model is loaded or trained.
"""
__version__ = "0.1.0"
__all__ = ["Detector", "ModelError", "__version__"]


def __getattr__(name: str):
    # PEP 562 lazy attributes: the API classes live in model_store, imported on first use.
    if name in ("Detector", "ModelError"):
        from deepfake_detector.model import model_store

        return getattr(model_store, name)
    raise AttributeError(f"module 'deepfake_detector' has no attribute {name!r}")
