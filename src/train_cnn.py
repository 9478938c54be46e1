"""Train a detector on a rendered, split spectrogram folder (wrapper over deepfake_detector.cli.train)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deepfake_detector.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
