"""Split rendered spectrograms into train/val/test (thin wrapper over deepfake_detector.cli.split; see --help)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deepfake_detector.cli.split import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
