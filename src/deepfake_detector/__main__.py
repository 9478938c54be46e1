"""`python -m deepfake_detector COMMAND ...`: the same commands as the `deepfake-detector` console script."""
import sys

from deepfake_detector.cli import main

sys.exit(main())
