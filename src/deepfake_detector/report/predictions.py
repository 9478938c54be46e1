"""Prediction results as files and text: console table, JSON (array or lines), CSV summary, plot file names.

Each result is the dict returned by `inference.predict_file` (keys in `inference.RESULT_KEYS`).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from deepfake_detector.io_utils import atomic_write_text

SUMMARY_COLUMNS = ("file", "label", "p_fake", "threshold", "model", "duration_s", "n_windows", "error")


def summary_row(result: dict) -> dict:
    """One flat row per file: the result without its window list, plus the window count."""
    row = {key: result[key] for key in SUMMARY_COLUMNS if key in result}
    row["n_windows"] = len(result["windows"])
    return row


def write_json(results: list[dict], out_path: Path) -> None:
    """`*.json` -> one JSON array; any other name (e.g. `*.jsonl`) -> JSON lines, one object per file."""
    out_path = Path(out_path)
    if out_path.suffix.lower() == ".json":
        text = json.dumps(results, indent=2) + "\n"
    else:
        text = "".join(json.dumps(result) + "\n" for result in results)
    atomic_write_text(out_path, text)


def write_csv(results: list[dict], out_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_row(result) for result in results)
    atomic_write_text(Path(out_path), buffer.getvalue())


def format_table(results: list[dict]) -> str:
    """Fixed-width console table: file, verdict, p_fake, duration, windows (or the error reason)."""
    width = max([len("file")] + [len(str(result["file"])) for result in results])
    lines = [f"{'file':<{width}}  {'verdict':<7}  {'p_fake':>6}  {'duration':>9}  {'windows':>7}"]
    for result in results:
        if result["error"] is not None:
            lines.append(f"{result['file']:<{width}}  {'ERROR':<7}  {result['error']}")
            continue
        lines.append(f"{result['file']:<{width}}  {result['label'].upper():<7}  {result['p_fake']:>6.3f}  "
                     f"{result['duration_s']:>8.2f}s  {len(result['windows']):>7}")
    return "\n".join(lines)


def unique_plot_path(plot_dir: Path, audio_path: Path, taken: set[str]) -> Path:
    """`<plot_dir>/<stem>.png`, numbered when two inputs share a stem (same name in different folders)."""
    name, number = f"{Path(audio_path).stem}.png", 1
    while name in taken:
        number += 1
        name = f"{Path(audio_path).stem}_{number}.png"
    taken.add(name)
    return Path(plot_dir) / name
