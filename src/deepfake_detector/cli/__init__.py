"""Command-line entry points: one module per command, each with `main(argv) -> exit status`.

`deepfake-detector COMMAND ...` (installed with the package) and `python -m deepfake_detector COMMAND ...`
dispatch here; the files in `scripts/` and `src/train_cnn.py` are thin wrappers over the same `main` functions.
"""
from __future__ import annotations

import importlib
import sys

# command -> (module under deepfake_detector.cli, one-line summary); modules are imported only when run, so
# `--help` never waits for TensorFlow.
COMMANDS = {
    "demo-data": ("demo_data", "build the offline demo corpus (real speech vs synthesisers and vocoders)"),
    "render": ("render", "render a dataset root into magma mel-spectrogram PNGs (resumable, parallel)"),
    "split": ("split", "split rendered spectrograms by source file into train/val/test"),
    "train": ("train", "train a detector on a rendered, split spectrogram folder or a dataset root"),
    "predict": ("predict", "call audio files real or fake with a trained detector"),
    "evaluate": ("evaluate", "evaluate a trained detector on labelled audio and write a report"),
    "serve": ("serve", "serve the web page and JSON API"),
}


def usage() -> str:
    lines = ["usage: deepfake-detector COMMAND [ARGS...]   (COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"deepfake_detector.cli.{COMMANDS[argv[0]][0]}")
    sys.argv[0] = f"deepfake-detector {argv[0]}"
    return module.main(argv[1:])
