"""Plots and a readable report for any scored set: training history, confusion, ROC, precision-recall, scores.

Figures are drawn on matplotlib `Figure` objects with the Agg canvas (no pyplot, no global backend state), and
every file is written atomically. Scores follow metrics.py: label 1 = fake, higher score = more likely fake.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deepfake_detector.report import metrics
from deepfake_detector.io_utils import atomic_path, atomic_write_text
from deepfake_detector.params import CLASS_NAMES

# Fewer files than this per class make every rate a coarse fraction (PITFALLS 2).
SMALL_CLASS_SIZE = 20
CLASS_COLOURS = {"real": "tab:blue", "fake": "tab:red"}
# File names of the evaluation plots, used with a prefix such as "<model name>_" or "".
# Metrics that may choose the best training epoch, and whether higher or lower is better.
MONITOR_MODES = {"val_auc": "max", "val_loss": "min"}
PLOT_NAMES = {"confusion": "confusion.png", "roc": "roc.png", "pr": "pr.png", "scores": "scores.png"}


def _save(figure: Figure, out_png: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    with atomic_path(Path(out_png)) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return Path(out_png)


def _split_by_class(labels, scores) -> dict[str, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    return {name: scores[labels == index] for index, name in enumerate(CLASS_NAMES)}


def best_epoch(history: pd.DataFrame, monitor: str) -> int:
    """The epoch (as numbered in the history's epoch column) with the best value of `monitor`; first one on ties,
    as EarlyStopping keeps the first."""
    best_row = history[monitor].idxmin() if MONITOR_MODES.get(monitor) == "min" else history[monitor].idxmax()
    return int(history["epoch"][best_row])


def plot_history(history_csv: Path, out_png: Path, monitor: str = "val_auc", kept_epoch: int | None = None) -> Path:
    """The monitored metric, accuracy and loss per epoch, training vs validation, with the epoch whose weights
    were kept marked (`kept_epoch`, counted from 1 like the history CSV; by default the best `monitor` epoch)."""
    history = pd.read_csv(history_csv)
    epochs = history["epoch"]
    if kept_epoch is None and monitor in history:
        kept_epoch = best_epoch(history, monitor)
    watched = monitor.removeprefix("val_")
    panels = [watched] + [metric for metric in ("accuracy", "loss") if metric != watched and metric in history]
    figure = Figure(figsize=(5 * len(panels), 4))
    for axes, metric in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels):
        axes.plot(epochs, history[metric], "o-", label="training")
        if f"val_{metric}" in history:
            axes.plot(epochs, history[f"val_{metric}"], "s-", label="validation")
        if kept_epoch is not None:
            axes.axvline(kept_epoch, color="grey", linestyle=":", label=f"kept: epoch {kept_epoch} (best {monitor})")
        title = f"{metric.upper() if metric == 'auc' else metric.capitalize()} per epoch"
        axes.set(title=title + (" (monitored)" if metric == watched else ""), xlabel="epoch", ylabel=metric)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    figure.suptitle(f"Training history ({Path(history_csv).name})")
    return _save(figure, out_png)


def plot_confusion(confusion_matrix, out_png: Path, title: str) -> Path:
    """Counts and row percentages; rows are the true class, columns the predicted class (real, fake)."""
    matrix = np.asarray(confusion_matrix, dtype=float)
    row_totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    image = axes.imshow(matrix / row_totals, cmap="Blues", vmin=0, vmax=1)
    for row in range(2):
        for column in range(2):
            share = matrix[row, column] / row_totals[row, 0]
            axes.text(column, row, f"{int(matrix[row, column])}\n({share:.0%})", ha="center", va="center",
                      color="white" if share > 0.5 else "black")
    axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES,
             xlabel="predicted class", ylabel="true class", title=title)
    figure.colorbar(image, ax=axes, label="share of the true class")
    # A legend for the cell text, since imshow has no artists to list.
    axes.plot([], [], " ", label="cell: count (share of row)")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    return _save(figure, out_png)


def plot_roc(labels, scores, out_png: Path, threshold: float | None = None) -> Path:
    """ROC curve with its AUC, the EER point and (optionally) the operating point at `threshold`."""
    fnr, fpr, _ = metrics.det_curve(labels, scores)
    eer, eer_threshold = metrics.compute_eer(labels, scores)
    at_eer = metrics.threshold_metrics(labels, scores, eer_threshold)
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    axes.plot(fpr, 1 - fnr, label=f"ROC (AUC = {metrics.roc_auc(labels, scores):.3f})")
    axes.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
    axes.plot([0, 1], [1, 0], ":", color="grey", linewidth=0.8, label="miss rate = false-alarm rate")
    axes.plot(1 - at_eer["per_class_accuracy"]["real"], at_eer["recall"], "o", color="tab:orange",
              label=f"EER point ({eer:.1%}, threshold {eer_threshold:.3g})")
    if threshold is not None:
        at_threshold = metrics.threshold_metrics(labels, scores, threshold)
        axes.plot(1 - at_threshold["per_class_accuracy"]["real"], at_threshold["recall"], "x", color="black",
                  markersize=9, label=f"model threshold {threshold:.3g}")
    axes.set(title="ROC: fake detection", xlabel="false-positive rate (real called fake)",
             ylabel="true-positive rate (fake caught)", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    axes.legend(loc="best", fontsize="small")
    return _save(figure, out_png)


def plot_precision_recall(labels, scores, out_png: Path, threshold: float | None = None) -> Path:
    """Precision-recall curve for the fake class, with the fake share as the chance level."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    labels = np.asarray(labels).astype(int).ravel()
    precision, recall, _ = precision_recall_curve(labels, scores)
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    axes.step(recall, precision, where="post",
              label=f"precision-recall (AP = {average_precision_score(labels, scores):.3f})")
    axes.axhline(labels.mean(), color="k", linestyle="--", linewidth=0.8,
                 label=f"chance (fake share {labels.mean():.2f})")
    if threshold is not None:
        at_threshold = metrics.threshold_metrics(labels, scores, threshold)
        axes.plot(at_threshold["recall"], at_threshold["precision"], "x", color="black", markersize=9,
                  label=f"model threshold {threshold:.3g}")
    axes.set(title="Precision-recall: fake class", xlabel="recall (fake caught)",
             ylabel="precision (calls of fake that are right)", xlim=(-0.02, 1.02), ylim=(-0.02, 1.05))
    axes.legend(loc="best", fontsize="small")
    return _save(figure, out_png)


def plot_score_histogram(labels, scores, threshold: float, out_png: Path) -> Path:
    """Score distribution per true class with the decision threshold as a vertical line."""
    by_class = _split_by_class(labels, scores)
    all_scores = np.concatenate(list(by_class.values()))
    in_unit_range = all_scores.min() >= 0 and all_scores.max() <= 1
    bins = np.linspace(0, 1, 26) if in_unit_range else 25
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for name, class_scores in by_class.items():
        axes.hist(class_scores, bins=bins, alpha=0.6, color=CLASS_COLOURS[name],
                  label=f"true {name} (n = {len(class_scores)})")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    axes.set(title="Scores per class (right of the line = called fake)", xlabel="p(fake)", ylabel="count")
    axes.legend()
    return _save(figure, out_png)


def evaluation_warnings(summary: dict, what: str = "test") -> list[str]:
    """Plain-language warnings about a metrics.summarise result that make its numbers untrustworthy."""
    warnings = []
    at_threshold = summary["at_threshold"]
    if at_threshold["single_class_predictions"]:
        called = "fake" if at_threshold["confusion_matrix"][0][1] + at_threshold["confusion_matrix"][1][1] else "real"
        warnings.append(f"model predicts a single class on {what}: every file is called {called}")
    for name in CLASS_NAMES:
        count = summary[f"n_{name}"]
        if count == 0:
            warnings.append(f"{what} has no {name} files: EER and AUC are undefined")
        elif count < SMALL_CLASS_SIZE:
            warnings.append(f"{what} has only {count} {name} files: rates move in steps of {1 / count:.0%}")
    if summary.get("roc_auc", 1.0) < 0.5:
        warnings.append(f"ROC AUC {summary['roc_auc']:.3f} < 0.5 on {what}: scores rank the classes the wrong way")
    return warnings


def write_evaluation_plots(labels, scores, threshold: float, out_dir: Path, prefix: str = "",
                           title: str = "") -> dict[str, Path]:
    """The confusion, ROC, precision-recall and score plots as `<out_dir>/<prefix><plot>.png`."""
    out_dir = Path(out_dir)
    paths = {key: out_dir / f"{prefix}{name}" for key, name in PLOT_NAMES.items()}
    confusion = metrics.threshold_metrics(labels, scores, threshold)["confusion_matrix"]
    plot_confusion(confusion, paths["confusion"], f"Confusion at threshold {threshold:.3g}" +
                   (f"\n{title}" if title else ""))
    plot_score_histogram(labels, scores, threshold, paths["scores"])
    both_classes = len(set(np.asarray(labels).astype(int).ravel())) == 2
    if not both_classes:  # ROC and precision-recall need both classes
        del paths["roc"], paths["pr"]
        return paths
    plot_roc(labels, scores, paths["roc"], threshold)
    plot_precision_recall(labels, scores, paths["pr"], threshold)
    return paths


def _metric_lines(at: dict) -> list[str]:
    return [f"- accuracy {at['accuracy']:.3f}, balanced accuracy {at['balanced_accuracy']:.3f}",
            f"- real files called real {at['per_class_accuracy']['real']:.3f}, "
            f"fake files caught (recall) {at['per_class_accuracy']['fake']:.3f}, precision {at['precision']:.3f}",
            f"- confusion [[real→real, real→fake], [fake→real, fake→fake]] = {at['confusion_matrix']}"]


def report_markdown(summary: dict, title: str, plots: dict[str, Path]) -> str:
    """A short report a person can read: counts, headline metrics, warnings and the plots."""
    threshold = summary["at_threshold"]["threshold"]
    lines = [f"# {title}", "",
             f"{summary['n']} files: {summary['n_real']} real, {summary['n_fake']} fake. "
             "Label 1 = fake; a file is called fake when its score >= threshold.", ""]
    if "eer" in summary:
        eer_low, eer_high = summary["eer_95ci"]
        auc_low, auc_high = summary["roc_auc_95ci"]
        lines += [f"**EER {summary['eer']:.3f}** (95% bootstrap interval {eer_low:.3f}–{eer_high:.3f}), "
                  f"**ROC AUC {summary['roc_auc']:.3f}** ({auc_low:.3f}–{auc_high:.3f}) "
                  "(threshold-free; 0.5 AUC = chance).", ""]
    lines += [f"## At the model's threshold ({threshold:.4g})", *_metric_lines(summary["at_threshold"]), ""]
    if "at_eer_threshold" in summary:
        lines += [f"## At this data's own EER threshold ({summary['eer_threshold']:.4g})",
                  "Only reachable with labels in hand; the gap to the model threshold shows how far the "
                  "score scale moved.", *_metric_lines(summary["at_eer_threshold"]), ""]
    lines += ["## Warnings", *([f"- {warning}" for warning in summary["warnings"]] or ["- none"]), "",
              "## Plots", *[f"- [{key}]({path.name})" for key, path in plots.items()], ""]
    return "\n".join(lines)


def write_evaluation_report(labels, scores, threshold: float, out_dir: Path, title: str,
                            extra: dict | None = None) -> dict:
    """Write metrics.json, the evaluation plots and report.md into `out_dir`; return the metrics dict."""
    out_dir = Path(out_dir)
    extra = dict(extra or {})
    summary = metrics.summarise(labels, scores, threshold)
    # Extra fields (model name, data folder, ...) never overwrite measured numbers; their warnings are kept.
    warnings = extra.pop("warnings", []) + evaluation_warnings(summary, "this data")
    summary = {**extra, **summary, "warnings": warnings}
    plots = write_evaluation_plots(labels, scores, threshold, out_dir, title=title)
    atomic_write_text(out_dir / "metrics.json", json.dumps(summary, indent=2, default=float) + "\n")
    atomic_write_text(out_dir / "report.md", report_markdown(summary, title, plots))
    return summary
