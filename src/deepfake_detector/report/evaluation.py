"""Evaluate a saved detector on labelled audio: per-file scores first, then metrics computed from them.

Labelled data is either a folder of class folders (`real/`, `fake/` or synonyms, optionally inside or around
`training/validation/testing` folders; the layouts `spectrograms.discover_sources` reads) or a manifest CSV with
`path` and `label` columns, paths relative to the CSV's folder. Every file is scored with
`inference.predict_file`, the same code the CLI and the web service use. Files that cannot be loaded stay in
the scores table with their error and are left out of the metrics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detector.data import spectrograms
from deepfake_detector.model import inference
from deepfake_detector.report import metrics, reports
from deepfake_detector.model.dataset import class_labels
from deepfake_detector.io_utils import atomic_write_text
from deepfake_detector.model.model_store import Detector
from deepfake_detector.params import canonical_class
from deepfake_detector.data.splits import canonical_split

# Manifest columns that name a speaker, generator or corpus; metrics are broken down per value of each.
GROUP_COLUMNS = ("speaker_or_system", "source", "corpus")
SCORE_COLUMNS = ["file", "label", "p_fake", "error"]
BREAKDOWN_COLUMNS = ["column", "value", "n", "n_real", "n_fake", "accuracy", "eer", "roc_auc"]


class EvaluationError(Exception):
    """The data cannot be evaluated; str(error) says why in one line."""


def _split_key(name: str) -> str:
    # 'testing' and 'test' name the same split; unknown names are compared as written.
    return canonical_split(str(name)) or str(name).strip().lower()


def read_manifest(csv_path: Path, split: str | None = None) -> pd.DataFrame:
    """Manifest rows (optionally one split) with `file` as written, `path` resolved, `label` real/fake."""
    csv_path = Path(csv_path)
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [column for column in ("path", "label") if column not in table.columns]
    if missing:
        raise EvaluationError(f"{csv_path} lacks column(s) {missing}; it needs 'path' and 'label'")
    if split is not None:
        if "split" not in table.columns:
            raise EvaluationError(f"--split {split} given but {csv_path} has no 'split' column")
        table = table[table["split"].map(_split_key) == _split_key(split)]
    try:
        table["label"] = table["label"].map(canonical_class)
    except ValueError as error:
        raise EvaluationError(f"{csv_path}: {error}") from error
    table.insert(0, "file", table.pop("path"))
    table["path"] = [str(csv_path.parent / relative) for relative in table["file"]]
    return table.reset_index(drop=True)


def read_labelled_folder(folder: Path, split: str | None = None) -> pd.DataFrame:
    """Audio under the class folders of `folder` (recursive) with `file` relative to `folder`."""
    folder = Path(folder).resolve()
    try:
        sources = spectrograms.discover_sources(folder)
    except ValueError as error:  # a folder whose name is not a class
        raise EvaluationError(f"{folder}: {error}") from error
    table = pd.DataFrame({
        "file": [str(source.path.relative_to(folder)) for source in sources],
        "label": [source.class_name for source in sources],
        "split": [source.official_split for source in sources],
        "path": [str(source.path) for source in sources],
    })
    if split is not None:
        table = table[table["split"].map(_split_key) == _split_key(split)]
    if not table["split"].astype(bool).any():
        table = table.drop(columns="split")  # the layout had no split folders
    return table.reset_index(drop=True)


def load_labelled_data(data: Path, split: str | None = None) -> pd.DataFrame:
    """A folder or a manifest CSV -> one row per file with at least `file`, `label` and `path`."""
    data = Path(data)
    if data.is_dir():
        table = read_labelled_folder(data, split)
    elif data.is_file() and data.suffix.lower() == ".csv":
        table = read_manifest(data, split)
    else:
        raise EvaluationError(f"{data} is neither a folder of class folders nor a manifest .csv")
    if table.empty:
        raise EvaluationError(f"no labelled audio files in {data}" + (f" for split '{split}'" if split else ""))
    return table


def score_table(detector: Detector, table: pd.DataFrame, hop_s: float | None = None,
                aggregate_rule: str = "mean", batch_size: int = 32) -> pd.DataFrame:
    """Scores table: file, label, p_fake (NaN on error), error ('' on success), then the other data columns."""
    results = [result for result, _ in
               inference.predict_files(detector, table["path"], hop_s, aggregate_rule, batch_size)]
    scores = table.drop(columns="path").copy()
    scores["p_fake"] = [np.nan if result["p_fake"] is None else result["p_fake"] for result in results]
    scores["error"] = [result["error"] or "" for result in results]
    return scores[SCORE_COLUMNS + [column for column in scores.columns if column not in SCORE_COLUMNS]]


def group_breakdown(scored: pd.DataFrame, threshold: float, columns=GROUP_COLUMNS) -> pd.DataFrame:
    """Per value of each group column: counts, accuracy at `threshold`, and EER/AUC where both classes exist."""
    rows = []
    for column in [column for column in columns if column in scored.columns]:
        for value, group in scored.groupby(column, sort=True):
            summary = metrics.summarise(class_labels(group["label"]), group["p_fake"], threshold)
            rows.append({"column": column, "value": value, "n": summary["n"], "n_real": summary["n_real"],
                         "n_fake": summary["n_fake"], "accuracy": summary["at_threshold"]["accuracy"],
                         "eer": summary.get("eer", np.nan), "roc_auc": summary.get("roc_auc", np.nan)})
    return pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)


def _breakdown_markdown(breakdown: pd.DataFrame, failed: pd.DataFrame) -> str:
    lines = ["## Breakdown per group", "EER and AUC only where a group holds both classes.", ""]
    if breakdown.empty:
        lines.append("- no group columns (" + ", ".join(GROUP_COLUMNS) + ") in this data")
    else:
        lines += ["| column | value | n (real/fake) | accuracy | EER | AUC |", "|---|---|---|---|---|---|"]
        lines += [f"| {row.column} | {row.value} | {row.n} ({row.n_real}/{row.n_fake}) | {row.accuracy:.3f} | "
                  f"{'' if np.isnan(row.eer) else f'{row.eer:.3f}'} | "
                  f"{'' if np.isnan(row.roc_auc) else f'{row.roc_auc:.3f}'} |" for row in breakdown.itertuples()]
    lines += ["", f"## Files that could not be scored ({len(failed)})"]
    lines += [f"- {row.file}: {row.error}" for row in failed.itertuples()] or ["- none"]
    return "\n".join(lines) + "\n"


def write_evaluation(scores: pd.DataFrame, threshold: float, out_dir: Path, title: str,
                     extra: dict | None = None) -> dict:
    """From a scores table, write scores.csv, breakdown.csv and the report (metrics.json, plots, report.md)."""
    out_dir = Path(out_dir)
    failed = scores[scores["error"] != ""]
    scored = scores[scores["error"] == ""]
    if scored.empty:
        raise EvaluationError(f"none of the {len(scores)} files could be scored; see the error column")
    breakdown = group_breakdown(scored, threshold)
    extra = {**(extra or {}), "n_failed": len(failed),
             "failed_files": failed[["file", "error"]].to_dict("records"),
             "breakdown": breakdown.replace({np.nan: None}).to_dict("records")}
    if len(failed):
        extra["warnings"] = [f"{len(failed)} file(s) could not be scored and are not in the metrics"]
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    atomic_write_text(out_dir / "breakdown.csv", breakdown.to_csv(index=False))
    summary = reports.write_evaluation_report(class_labels(scored["label"]), scored["p_fake"].to_numpy(),
                                              threshold, out_dir, title, extra)
    report = (out_dir / "report.md").read_text()
    atomic_write_text(out_dir / "report.md", report.rstrip("\n") + "\n\n" + _breakdown_markdown(breakdown, failed))
    return summary
