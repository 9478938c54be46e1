"""Evaluate a trained detector on labelled audio and write a report folder.

    python scripts/evaluate.py DATA [--model models/<name>.keras] [--name NAME] [--out reports/<name>]
                               [--split testing] [--layout NAME] [--strict] [--hop S] [--aggregate mean]

DATA is a dataset root: a folder of class folders (real/ and fake/, or synonyms such as bonafide/spoof; split
folders such as testing/ are understood), a manifest CSV with `path` and `label` columns (paths relative to the
CSV), or a public corpus as it unpacks (ASVspoof 2019 LA / 2021 / 5, In-the-Wild, WaveFake, MLAAD). Metrics are
computed at the model's stored threshold and at this data's own EER point, per attack and per metadata value;
min t-DCF where the organisers' ASV scores are on disk.
Exit status: 0 report written (files that failed to load are listed in it), 1 no file could be scored,
2 usage, model or data error.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_OK, EXIT_NOTHING_SCORED, EXIT_USAGE = 0, 1, 2


def parse_args(argv):
    from deepfake_detector.datasets import add_dataset_arguments
    from deepfake_detector.model.inference import add_scoring_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 report written, 1 no file could be scored, "
                                            "2 usage, model or data error")
    parser.add_argument("data", type=Path, metavar="DATA", help="dataset root: labelled folder, corpus or .csv")
    add_scoring_arguments(parser)
    parser.add_argument("--split", help="only this official split (train/val/test or dev, eval, testing, ...)")
    add_dataset_arguments(parser)
    parser.add_argument("--name", help="report name (default: <model>_<data>[_<split>])")
    parser.add_argument("--out", type=Path, help="report folder (default: reports/<name>)")
    return parser.parse_args(argv)


def data_name(data: Path) -> str:
    """'for-norm-mini' for both for-norm-mini/ and for-norm-mini/manifest.csv."""
    data = data.resolve()
    return data.parent.name if data.suffix.lower() == ".csv" and data.stem == "manifest" else data.stem


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepfake_detector.model import inference
    from deepfake_detector.report import evaluation, model_card

    try:
        detector, params = inference.detector_from_args(args, Path("models"))
        table = evaluation.load_labelled_data(args.data, args.split, args.layout, args.strict)
        asv = _asv_scores(args.data, table)
    except Exception as error:  # ModelError, EvaluationError, a bad flag, or Keras failing on a corrupt file
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    name = args.name or "_".join(filter(None, [detector.name, data_name(args.data), args.split]))
    out_dir = args.out or Path("reports") / name
    scores = evaluation.score_table(detector, table, args.hop, args.aggregate, args.batch_size)
    problems = table.attrs["problems"]
    extra = {"model": detector.name, "model_path": str(detector.path),
             "model_trained_at": detector.metadata.get("trained_at"), "data": str(args.data),
             "layout": table.attrs["layout"], "split": args.split, "hop_s": params.hop_s,
             "aggregate": args.aggregate, "threshold_source": "model metadata", "dataset_problems": len(problems)}
    if problems:
        extra["warnings"] = [f"{len(problems)} dataset problem(s) (protocol lines without audio, audio without "
                             f"protocol line), listed in {out_dir / 'errors.csv'}"]
    _write_problems(out_dir / "errors.csv", problems)
    title = f"{detector.name} on {data_name(args.data)}" + (f" ({args.split})" if args.split else "")
    try:
        summary = evaluation.write_evaluation(scores, detector.threshold, out_dir, title, extra, asv)
    except evaluation.EvaluationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOTHING_SCORED
    headline = f", EER {summary['eer']:.3f}, ROC AUC {summary['roc_auc']:.3f}" if "eer" in summary else ""
    print(f"{title}: {summary['n']} files scored, {summary['n_failed']} failed{headline}, "
          f"accuracy {summary['at_threshold']['accuracy']:.3f} at threshold {detector.threshold:.4g}")
    if summary.get("min_tdcf") is not None:
        print(f"min t-DCF {summary['min_tdcf']:.4f} ({summary['min_tdcf_cost_model']}, organisers' ASV scores)")
    print(f"report: {out_dir}/report.md")
    try:  # the model's card lists every report of this model found beside this one
        print(f"model card: {model_card.write_model_card(detector.path, out_dir.parent)}")
    except OSError as error:
        print(f"note: model card not updated ({error})", file=sys.stderr)
    return EXIT_OK


def _asv_scores(data: Path, table):
    """The organisers' ASV scores for the one split evaluated (min t-DCF is defined per split), else None."""
    from deepfake_detector import datasets

    splits = set(table["split"]) if "split" in table.columns else set()
    return datasets.asv_scores(data, table.attrs["layout"], splits.pop()) if len(splits) == 1 else None


def _write_problems(path: Path, problems) -> None:
    import pandas as pd

    from deepfake_detector.io_utils import atomic_write_text

    atomic_write_text(path, pd.DataFrame(problems, columns=["file", "reason"]).to_csv(index=False))


if __name__ == "__main__":
    sys.exit(main())
