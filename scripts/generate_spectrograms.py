"""Render audio into magma mel-spectrogram PNGs (thin wrapper over deepfake_detector.cli.render; see --help)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deepfake_detector.cli.render import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
