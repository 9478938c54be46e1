"""Model cards: `models/<name>.md`, written from the model's metadata so it is never out of date.

Training writes the card right after the model and its metadata; `deepfake-detector evaluate` rewrites it after
each report, adding the figures of every evaluation report of this very model (matched by model file and
training time) as cross-dataset rows. `write_model_card(model_path)` regenerates it at any time; nothing here
imports TensorFlow.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from deepfake_detector.io_utils import atomic_write_text
from deepfake_detector.model.model_store import load_metadata
from deepfake_detector.params import CLASS_NAMES

# Measured on this project's models (docs/benchmarks.md), so they apply to any model trained by this pipeline
# until a benchmark shows otherwise. Each names the measurement it rests on.
KNOWN_FAILURES = [
    "Audio unlike the training data: no model trained on the demo corpus was usable on other corpora "
    "(crossdomain EER 32-49 % over models and seeds; docs/benchmarks.md).",
    "Clean studio read speech (audiobooks, TTS corpora): the demo corpus' real side is game dialogue, telephone "
    "prompts and a few readers, and make demo's model of 2026-12-03 called 161 of 172 real LJSpeech, LibriSpeech, "
    "LibriTTS, VCTK and VCC2020 recordings of the crossdomain set fake (docs/benchmarks.md, third round).",
    "Datasets whose fakes differ in a way the training fakes did not: for-norm-mini (band-limited, louder fakes) "
    "was ranked the wrong way round by the compact models (ROC AUC 0.09-0.42).",
    "Vocoder copy-synthesis of a real recording (Griffin-Lim, WORLD, LPC): held out of training it stayed "
    "undetected (leave-one-system-out EER 41-65 %), since it keeps the mel magnitude picture almost unchanged. "
    "Neural-vocoder copies too: on a narrow-band demo corpus whose fakes are 95 % vocoded copies of its real "
    "clips, a model did not learn to tell them apart (test EER 46.5 %, AUC 0.54; docs/benchmarks.md, fifth round).",
    "Real speech from a source not in training: with each real source of the demo corpus held out in turn, the "
    "held-out read sentences were called real 13 % of the time and the read telephone prompts 18 % (mean "
    "held-out-source EER 42 %, 3 seeds; docs/benchmarks.md, fourth round).",
    "Clips shorter than {min_duration_s:g} s are refused; clips shorter than one window ({window_s:g} s) are "
    "looped to fill it, so a very short clip is judged on few distinct frames.",
]


def _interval(summary: dict, key: str) -> str:
    low, high = summary.get(f"{key}_95ci", (None, None))
    return f"{summary[key]:.3f} ({low:.3f}-{high:.3f})" if low is not None else f"{summary[key]:.3f}"


def _figures_row(label: str, summary: dict) -> str:
    at = summary["at_threshold"]
    ranking = (f"{_interval(summary, 'eer')} | {_interval(summary, 'roc_auc')}" if "eer" in summary
               else "n/a (one class) | n/a")
    return (f"| {label} | {summary['n_real']}/{summary['n_fake']} | {ranking} | {at['accuracy']:.3f} | "
            f"{at['balanced_accuracy']:.3f} |")


FIGURES_HEADER = ["| data | files (real/fake) | EER (95% CI) | ROC AUC (95% CI) | accuracy at threshold | "
                  "balanced accuracy |", "|---|---|---|---|---|---|"]


def evaluation_reports(model_path: Path, metadata: dict, reports_dir: Path) -> list[dict]:
    """Every `reports_dir/*/metrics.json` written by `evaluate` for this model file and this training run."""
    found = []
    for metrics_json in sorted(Path(reports_dir).glob("*/metrics.json")):
        try:
            report = json.loads(metrics_json.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a half-written or foreign file is not a figure of this model
        same_file = report.get("model_path") and Path(report["model_path"]).resolve() == Path(model_path).resolve()
        if same_file and report.get("model_trained_at") == metadata.get("trained_at") and "at_threshold" in report:
            found.append({**report, "report": str(metrics_json.parent.resolve())})
    return found


def _link(report_dir: str, model_path: Path) -> str:
    """The report's path relative to the card, so the link works wherever the project folder lies."""
    return os.path.relpath(Path(report_dir) / "report.md", Path(model_path).resolve().parent)


def _data_lines(metadata: dict) -> list[str]:
    summary = metadata.get("data_summary")
    if not summary:
        return ["No data summary in the metadata."]
    lines = ["| split | " + " | ".join(f"{name} files (windows)" for name in CLASS_NAMES) + " |",
             "|---|" + "---|" * len(CLASS_NAMES)]
    for split, classes in summary.items():
        cells = [f"{classes[name]['files']} ({classes[name]['images']})" for name in CLASS_NAMES]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    augment = metadata.get("augment") or {}
    used = [key for key, value in augment.items() if value and key not in ("seed", "copies")]
    lines += ["", f"Data folder `{metadata.get('data_dir', '?')}`, split by source file (and group when given); "
                  f"seed {metadata.get('seed', '?')}; training augmentation: "
                  + (", ".join(f"{key}={augment[key]}" for key in used) if used else "none") + "."]
    return lines


def _parameter_lines(metadata: dict) -> list[str]:
    params, training = metadata["params"], metadata.get("training", {})
    lines = [f"- network `{metadata.get('model_name', metadata.get('architecture', '?'))}`, "
             f"{metadata.get('parameters', 0):,} weights, input {metadata['input_shape']} uint8 pictures",
             f"- features: {params['sample_rate']} Hz mono, {params['window_s']:g} s windows every "
             f"{params['hop_s']:g} s, {params['n_mels']}-band mel (n_fft {params['n_fft']}, hop {params['hop_length']}, "
             f"{params['fmin']:g}-{params['fmax']:g} Hz), dB clipped to -{params['top_db']:g}, magma colours"]
    if training:
        lines.append(f"- training: {training.get('epochs_run')} epoch(s), weights of epoch {training.get('best_epoch')} "
                     f"kept (best {training.get('monitor')}), global batch {training.get('global_batch_size')} on "
                     f"{training.get('replicas')} replica(s), learning rate {training.get('learning_rate')}, "
                     f"{training.get('seconds', 0):.0f} s")
    versions = metadata.get("versions", {})
    lines.append(f"- trained {metadata.get('trained_at', 'at an unrecorded time')}, git "
                 f"{(metadata.get('git_commit') or 'unknown')[:10]}, "
                 + ", ".join(f"{name} {version}" for name, version in versions.items()))
    return lines


def _threshold_lines(metadata: dict) -> list[str]:
    calibration, rule = metadata.get("calibration"), metadata.get("threshold_rule")
    chosen = (f"chosen by the rule \"{rule}\" on validation files only (the test split was scored once, "
              "afterwards)" if rule else "chosen by a rule the metadata does not record")
    return [f"A file is called **fake** when its p(fake) >= **{metadata['threshold']:.4g}**, {chosen}. A file's "
            f"p(fake) aggregates its window scores ({metadata.get('aggregate', 'mean')}) on the network's scale, "
            "then " + (f"applies the Platt calibration fitted on validation files (slope {calibration['slope']:.3g}, "
                       f"intercept {calibration['intercept']:.3g})." if calibration else "is left uncalibrated.")]


def model_card_markdown(model_path: Path, metadata: dict, reports: list[dict]) -> str:
    name = metadata["name"]
    lines = [f"# Model card: {name}", "",
             f"`{Path(model_path).name}` with its metadata `{Path(model_path).with_suffix('.json').name}`. "
             "Generated from the metadata (deepfake_detector.report.model_card); edits are overwritten.", "",
             "## Intended use", "",
             "Screening speech recordings for text-to-speech or voice-conversion output **of the kinds in the "
             "training data below**, as one piece of evidence for a person who also listens and checks the "
             "source. Not for deciding alone about a person or a recording, and not for audio unlike the "
             "training data, where the figures below do not hold (see known failure cases).", "",
             "## Training data", "", *_data_lines(metadata), "",
             "## Parameters", "", *_parameter_lines(metadata), "",
             "## Decision threshold", "", *_threshold_lines(metadata), "",
             "## In-domain figures", "",
             "Per source file, at the threshold above; intervals are 95 % percentile bootstrap intervals.", ""]
    in_domain = [(split, metadata[key]) for split, key in (("test split", "test"), ("validation split", "validation"))
                 if key in metadata]
    lines += ([*FIGURES_HEADER, *(_figures_row(split, summary) for split, summary in in_domain)] if in_domain
              else ["No in-domain figures were saved with this model."])
    lines += ["", "## Cross-dataset figures", ""]
    if reports:
        lines += ["From `deepfake-detector evaluate` reports of this model, at its own threshold:", "", *FIGURES_HEADER,
                  *(_figures_row(f"{Path(report['data']).name}" + (f" ({report['split']})" if report.get("split")
                                 else "") + f" ([report]({_link(report['report'], model_path)}))", report)
                    for report in reports)]
    else:
        lines.append(f"None yet. Run `deepfake-detector evaluate DATA --model {model_path}`: the report is added "
                     "here.")
    lines += ["", "## Known failure cases", "", *(f"- {failure}".format(**metadata["params"])
                                                            for failure in KNOWN_FAILURES)]
    lines += [f"- This model: {warning}." for warning in metadata.get("warnings", [])]
    for report in reports:
        if report.get("roc_auc", 1.0) < 0.5 or report.get("eer", 0.0) > 0.4:
            lines.append(f"- This model on {Path(report['data']).name}: EER {report['eer']:.3f}, ROC AUC "
                         f"{report['roc_auc']:.3f}: not usable there.")
    return "\n".join(lines) + "\n"


def write_model_card(model_path: Path, reports_dir: Path = Path("reports")) -> Path:
    """(Re)write `<model>.md` beside the model from its metadata and this model's reports under `reports_dir`."""
    model_path = Path(model_path)
    metadata = load_metadata(model_path)
    card = model_path.with_suffix(".md")
    atomic_write_text(card, model_card_markdown(model_path, metadata, evaluation_reports(model_path, metadata,
                                                                                          reports_dir)))
    return card
