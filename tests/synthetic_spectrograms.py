"""A tiny rendered spectrogram folder made on the fly: tones are 'real', noise is 'fake'.

It follows the output contract of generate + split (params.json, splits.csv, <split>/<class>/*.png) without
depending on their code, so dataset and training tests stay independent of them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detector.data.features import save_png, waveform_to_images
from deepfake_detector.params import Params

# Files per class in each split; every third file is long enough for two windows.
DEFAULT_FILES = {"train": 4, "val": 2, "test": 2}


def _waveform(class_name: str, index: int, params: Params, rng: np.random.Generator) -> np.ndarray:
    seconds = params.window_s * (1.5 if index % 3 == 2 else 0.5)
    t = np.arange(int(seconds * params.sample_rate)) / params.sample_rate
    if class_name == "real":
        frequency = 200.0 + 150.0 * index
        return (0.5 * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    return (0.3 * rng.standard_normal(len(t))).astype(np.float32)


def make_spectrogram_folder(root: Path, files_per_split: dict[str, int] = DEFAULT_FILES, seed: int = 0,
                            params: Params = Params(), paired: bool = False) -> Path:
    """Render tones (real) and noise (fake) into `root` as generate + split would; returns `root`.

    `paired` adds the splits.csv column `pair`: real file i is pair id `<split>_real_i`, and fake file i joins it
    for even i (as a copy-synthesis would); odd fakes are unpaired."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n_files in files_per_split.items():
        for class_name in ("fake", "real"):  # alphabetical, the order a folder listing would give
            for index in range(n_files):
                stem = f"{split}_{class_name}_{index}"
                images, _ = waveform_to_images(_waveform(class_name, index, params, rng), params)
                source_path = f"synthetic/{class_name}/{stem}.wav"
                for window, image in enumerate(images):
                    png_path = f"{split}/{class_name}/{stem}_w{window:03d}.png"
                    save_png(image, root / png_path)
                    rows.append({"png_path": png_path, "class": class_name, "split": split,
                                 "source_path": source_path,
                                 "source_sha256": hashlib.sha256(source_path.encode()).hexdigest(),
                                 "group": stem, "pair": f"{split}_real_{index}"
                                 if class_name == "real" or index % 2 == 0 else ""})
    params.save(root / "params.json")
    table = pd.DataFrame(rows)
    if not paired:
        table = table.drop(columns="pair")
    table.to_csv(root / "manifest.csv", index=False)
    table.to_csv(root / "splits.csv", index=False)
    return root
