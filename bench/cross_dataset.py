"""Cross-dataset matrix: train on one corpus, evaluate on every other, through the project's own commands.

For each training corpus (the demo corpus in data_clean/, and ../shared/data/for-norm-mini with its official
training/validation split) and each model, this runs generate_spectrograms -> split_data -> train_cnn in a
work folder, then evaluate.py on: the corpus' own test split, for-norm-mini testing, tts-mixed and crossdomain.
crossdomain is evaluation only: nothing here trains, tunes or picks a threshold on it; thresholds come from each
model's own validation split. Writes <work>/cross_dataset.md and .json.

    python bench/cross_dataset.py [--models baseline compact compact_cmn] [--epochs 10]
                                  [--work benchmarks/cross_dataset]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def run(*command: str) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run([sys.executable, *command], cwd=PROJECT_ROOT, check=True)


def train_corpus(name: str, audio_dir: Path, groups: Path | None, model: str, epochs: int, work: Path) -> Path:
    """Render, split and train one model on one corpus; returns the model path."""
    specs, model_path = work / name / "spectrograms", work / name / "models" / f"{model}.keras"
    run("scripts/generate_spectrograms.py", "--input", str(audio_dir), "--output", str(specs))
    run("scripts/split_data.py", "--input", str(specs), *(["--groups", str(groups)] if groups else []))
    if model_path.is_file() and model_path.with_name(f"{model}_metrics.json").is_file():
        print(f"reusing {model_path} (delete it to retrain)", flush=True)  # a killed run resumes here
        return model_path
    run("src/train_cnn.py", "--data", str(specs), "--model", model, "--epochs", str(epochs),
        "--models-dir", str(work / name / "models"), "--plots-dir", str(work / name / "plots"))
    return model_path


def own_test_manifest(specs: Path) -> Path:
    """A path,label manifest of the source files in a rendered folder's test split."""
    splits = pd.read_csv(specs / "splits.csv")
    test = splits[splits["split"] == "test"].drop_duplicates("source_path")
    manifest = specs / "test_manifest.csv"
    test.rename(columns={"source_path": "path", "class": "label"})[["path", "label"]].to_csv(manifest, index=False)
    return manifest


def evaluate(model: Path, data: Path, split: str | None, out: Path) -> dict:
    run("scripts/evaluate.py", str(data), "--model", str(model), "--out", str(out),
        *(["--split", split] if split else []))
    return json.loads((out / "metrics.json").read_text())


def markdown(rows: list[dict]) -> str:
    lines = ["| trained on | model | evaluated on | files (real/fake) | EER (95% CI) | ROC AUC (95% CI) "
             "| accuracy at val threshold | balanced accuracy |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        at, (eer_low, eer_high), (auc_low, auc_high) = row["at_threshold"], row["eer_95ci"], row["roc_auc_95ci"]
        lines.append(f"| {row['trained_on']} | {row['model']} | {row['evaluated_on']} | {row['n_real']}/{row['n_fake']}"
                     f" | {row['eer']:.3f} ({eer_low:.2f}–{eer_high:.2f}) | {row['roc_auc']:.3f} "
                     f"({auc_low:.2f}–{auc_high:.2f}) | {at['accuracy']:.3f} | {at['balanced_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["baseline", "compact", "compact_cmn"],
                        help="registry models, each trained on each corpus")
    parser.add_argument("--epochs", type=int, default=10, help="maximum epochs per training run")
    parser.add_argument("--demo", type=Path, default=PROJECT_ROOT / "data_clean", help="demo corpus folder")
    parser.add_argument("--work", type=Path, default=PROJECT_ROOT / "benchmarks" / "cross_dataset",
                        help="rendered pictures, trained models, evaluations and the report")
    args = parser.parse_args(argv)
    if not SHARED_DATA.is_dir():
        print(f"error: {SHARED_DATA} is absent; the matrix needs the shared evaluation sets", file=sys.stderr)
        return 1
    if not (args.demo / "groups.csv").is_file():
        print(f"error: no demo corpus in {args.demo}: run scripts/make_demo_data.py first", file=sys.stderr)
        return 1
    work = args.work.resolve()
    corpora = {"demo": (args.demo.resolve(), args.demo.resolve() / "groups.csv"),
               "for-norm-mini": (SHARED_DATA / "for-norm-mini", None)}
    evaluation_sets = {"for-norm-mini testing": (SHARED_DATA / "for-norm-mini" / "manifest.csv", "testing"),
                       "tts-mixed": (SHARED_DATA / "tts-mixed" / "manifest.csv", None),
                       "crossdomain": (SHARED_DATA / "crossdomain" / "manifest.csv", None)}
    rows = []
    for corpus, (audio_dir, groups) in corpora.items():
        for model_name in args.models:
            model = train_corpus(corpus, audio_dir, groups, model_name, args.epochs, work)
            targets = dict(evaluation_sets)
            if corpus == "demo":  # for-norm-mini's own test split is already a column
                targets = {"demo test": (own_test_manifest(work / corpus / "spectrograms"), None), **targets}
            for target, (data, split) in targets.items():
                out = work / corpus / "reports" / f"{model_name}_{target.replace(' ', '_')}"
                summary = evaluate(model, data, split, out)
                rows.append({"trained_on": corpus, "model": model_name, "evaluated_on": target, **summary})
    table = markdown(rows)
    (work / "cross_dataset.md").write_text(table)
    (work / "cross_dataset.json").write_text(json.dumps(rows, indent=2, default=float))
    print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as failure:  # the step printed its own one-line error above
        print(f"error: {failure.cmd[1]} failed with exit code {failure.returncode}",
              file=sys.stderr)
        sys.exit(1)
