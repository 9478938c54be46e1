"""Audio in, pictures out: decoding, the feature function, augmentation, rendering, splits."""
