"""Evaluate a saved detector on labelled audio: per-file scores first, then metrics computed from them.

Labelled data is any dataset root `deepfake_detector.datasets` reads (class folders, Fake-or-Real, a manifest CSV
with `path` and `label` columns, ASVspoof 2019/2021/5, In-the-Wild, WaveFake, MLAAD). Every file is scored with
`inference.predict_file`, the same code the CLI and the web service use. Files that cannot be loaded stay in
the scores table with their error and are left out of the metrics. Besides the pooled metrics the report has
EER per attack (each attack's spoofed files against all bona fide files), EER per value of every metadata column
(codec, language, vocoder, ...) and, where the organisers' ASV scores are on disk, the min t-DCF.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detector import datasets
from deepfake_detector.model import inference
from deepfake_detector.report import metrics, reports
from deepfake_detector.model.dataset import class_labels
from deepfake_detector.io_utils import atomic_write_text
from deepfake_detector.model.model_store import Detector
from deepfake_detector.data.splits import SPLIT_SYNONYMS, canonical_split

# Manifest columns that name a speaker, generator or corpus; metrics are broken down per value of each (and of
# every metadata column the dataset carries).
GROUP_COLUMNS = ("speaker_or_system", "source", "corpus")
SCORE_COLUMNS = ["file", "label", "p_fake", "error"]
BREAKDOWN_COLUMNS = ["column", "value", "n", "n_real", "n_fake", "accuracy", "eer", "roc_auc"]
ATTACK_COLUMNS = ["attack", "n_fake", "n_real", "eer", "roc_auc", "missed_at_threshold"]
# A metadata column with more values than this, or than half its rows (hashes, transcripts), is not a condition;
# nor is a column of fractional numbers (durations).
MAX_CONDITION_VALUES = 50


class EvaluationError(Exception):
    """The data cannot be evaluated; str(error) says why in one line."""


def load_labelled_data(data: Path, split: str | None = None, layout: str | None = None,
                       strict: bool = False) -> pd.DataFrame:
    """A dataset root -> one row per file: `file` (relative to the root), `label`, `path`, and the dataset's
    split, group, attack and metadata columns where it has them. Dataset problems (protocol lines without audio)
    are in `table.attrs["problems"]`, the layout in `table.attrs["layout"]`."""
    data = Path(data)
    try:
        table, problems = datasets.read(data, layout, strict)
    except datasets.DatasetError as error:
        raise EvaluationError(str(error)) from error
    layout = table.attrs["layout"]
    base = os.path.abspath(data if data.is_dir() else data.parent)
    table.insert(0, "file", [os.path.relpath(path, base) for path in table["path"]])
    if split is not None:
        if canonical_split(split) is None:
            raise EvaluationError(f"--split {split} is not one of {', '.join(SPLIT_SYNONYMS)}")
        if not table["split"].astype(bool).any():
            raise EvaluationError(f"--split {split} given but {data} has no official splits")
        table = table[table["split"] == canonical_split(split)]
    # Columns the layout has no values for (a class folder has no attack) only clutter the scores table.
    empty = [column for column in ("split", "group", "attack") if not table[column].astype(bool).any()]
    table = table.drop(columns=empty).reset_index(drop=True)
    table.attrs.update(problems=problems, layout=layout)
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


def condition_columns(scored: pd.DataFrame) -> list[str]:
    """Columns to break the metrics down by: the legacy group columns and every dataset metadata column."""
    fixed = set(SCORE_COLUMNS) | set(datasets.TABLE_COLUMNS)
    metadata = [column for column in scored.columns if column not in fixed
                and 1 < scored[column].nunique() <= min(MAX_CONDITION_VALUES, len(scored) // 2)
                and not _is_measurement(scored[column])]
    return list(dict.fromkeys([column for column in GROUP_COLUMNS if column in scored.columns] + metadata))


def _is_measurement(values: pd.Series) -> bool:
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(numbers.notna().all() and (numbers != numbers.round()).any())


def attack_breakdown(scored: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """One row per attack: EER and AUC of its spoofed files against ALL bona fide files, and the share of its
    files called real at `threshold`. Empty when the data names no attacks."""
    if "attack" not in scored.columns:
        return pd.DataFrame(columns=ATTACK_COLUMNS)
    real = scored[scored["label"] == "real"]
    fakes = scored[(scored["label"] == "fake") & ~scored["attack"].isin(["", datasets.BONA_FIDE_ATTACK])]
    rows = []
    for attack, group in fakes.groupby("attack", sort=True):
        both = pd.concat([real, group])
        labels, scores = class_labels(both["label"]), both["p_fake"].to_numpy()
        eer = metrics.compute_eer(labels, scores)[0] if len(real) else np.nan
        auc = metrics.roc_auc(labels, scores) if len(real) else np.nan
        rows.append({"attack": attack, "n_fake": len(group), "n_real": len(real), "eer": eer, "roc_auc": auc,
                     "missed_at_threshold": float(np.mean(group["p_fake"] < threshold))})
    return pd.DataFrame(rows, columns=ATTACK_COLUMNS)


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


def _number(value: float) -> str:
    return "" if value is None or np.isnan(value) else f"{value:.3f}"


def _attack_markdown(attacks: pd.DataFrame, tdcf: dict | None) -> list[str]:
    lines = []
    if tdcf is not None:
        covered = "".join(f", {column} {value}" for column, value in tdcf["cm_rows"])
        lines += [f"**min t-DCF** ({tdcf['cost_model']}, organisers' ASV scores, {tdcf['n']} trials{covered}): "
                  f"{tdcf['value']:.4f}", ""]
    if attacks.empty:
        return lines
    lines += ["## EER per attack", "Each attack's spoofed files against all bona fide files.", "",
              "| attack | n fake | n real | EER | AUC | missed at threshold |", "|---|---|---|---|---|---|"]
    lines += [f"| {row.attack} | {row.n_fake} | {row.n_real} | {_number(row.eer)} | {_number(row.roc_auc)} | "
              f"{row.missed_at_threshold:.3f} |" for row in attacks.itertuples()]
    return lines + [""]


def _breakdown_markdown(breakdown: pd.DataFrame, failed: pd.DataFrame) -> str:
    lines = ["## Breakdown per condition", "EER and AUC only where a value holds both classes.", ""]
    if breakdown.empty:
        lines.append("- no condition columns (" + ", ".join(GROUP_COLUMNS) + " or dataset metadata) in this data")
    else:
        lines += ["| column | value | n (real/fake) | accuracy | EER | AUC |", "|---|---|---|---|---|---|"]
        lines += [f"| {row.column} | {row.value} | {row.n} ({row.n_real}/{row.n_fake}) | {row.accuracy:.3f} | "
                  f"{_number(row.eer)} | {_number(row.roc_auc)} |" for row in breakdown.itertuples()]
    lines += ["", f"## Files that could not be scored ({len(failed)})"]
    lines += [f"- {row.file}: {row.error}" for row in failed.itertuples()] or ["- none"]
    return "\n".join(lines) + "\n"


def write_evaluation(scores: pd.DataFrame, threshold: float, out_dir: Path, title: str,
                     extra: dict | None = None, asv=None) -> dict:
    """From a scores table, write scores.csv, breakdown.csv, attacks.csv and the report (metrics.json, plots,
    report.md). `asv`, the organisers' ASV system (datasets.AsvScores), adds the min t-DCF."""
    out_dir = Path(out_dir)
    failed = scores[scores["error"] != ""]
    scored = scores[scores["error"] == ""]
    if scored.empty:
        raise EvaluationError(f"none of the {len(scores)} files could be scored; see the error column")
    breakdown = group_breakdown(scored, threshold, condition_columns(scored))
    attacks = attack_breakdown(scored, threshold)
    tdcf = _min_tdcf(scored, asv)
    extra = {**(extra or {}), "n_failed": len(failed),
             "failed_files": failed[["file", "error"]].to_dict("records"),
             "breakdown": breakdown.replace({np.nan: None}).to_dict("records"),
             "per_attack": attacks.replace({np.nan: None}).to_dict("records"),
             "min_tdcf": tdcf and tdcf["value"], "min_tdcf_cost_model": tdcf and tdcf["cost_model"]}
    if len(failed):
        extra["warnings"] = extra.get("warnings", []) + [
            f"{len(failed)} file(s) could not be scored and are not in the metrics"]
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    atomic_write_text(out_dir / "breakdown.csv", breakdown.to_csv(index=False))
    if not attacks.empty:
        atomic_write_text(out_dir / "attacks.csv", attacks.to_csv(index=False))
    summary = reports.write_evaluation_report(class_labels(scored["label"]), scored["p_fake"].to_numpy(),
                                              threshold, out_dir, title, extra)
    report = (out_dir / "report.md").read_text()
    sections = "\n".join(_attack_markdown(attacks, tdcf)) + "\n" + _breakdown_markdown(breakdown, failed)
    atomic_write_text(out_dir / "report.md", report.rstrip("\n") + "\n\n" + sections.lstrip("\n"))
    return summary


def _min_tdcf(scored: pd.DataFrame, asv) -> dict | None:
    """{value, cost_model, n, cm_rows} of the min t-DCF over the CM rows the official figure covers, or None
    without ASV scores or without both classes among those rows."""
    if asv is None:
        return None
    covered = scored
    for column, wanted in asv.cm_rows:
        covered = covered[covered[column].astype(str) == wanted] if column in covered.columns else covered.iloc[:0]
    if covered["label"].nunique() < 2:
        return None
    function, cost_model = metrics.MIN_TDCF[asv.cost_model]
    value = function(class_labels(covered["label"]), covered["p_fake"].to_numpy(), asv.keys, asv.scores)
    return {"value": value, "cost_model": cost_model, "n": len(covered), "cm_rows": asv.cm_rows}
