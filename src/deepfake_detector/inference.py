"""Scoring: pictures -> calibrated p(fake) per window, and windows -> one verdict per file."""
from __future__ import annotations

import numpy as np

# How per-window scores become a file's score. "mean" is the default: a file is called fake when its average
# window is; "max" flags a file when any window is (more sensitive to partly synthetic recordings).
AGGREGATES = {"mean": np.mean, "max": np.max, "median": np.median}


def aggregate(window_scores, rule: str = "mean") -> float:
    if rule not in AGGREGATES:
        raise ValueError(f"unknown aggregate '{rule}'; choose one of: {', '.join(AGGREGATES)}")
    return float(AGGREGATES[rule](np.asarray(window_scores, dtype=np.float64)))
