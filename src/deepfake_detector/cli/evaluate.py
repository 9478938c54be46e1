"""Evaluate a trained detector on labelled audio and write a report folder.

    python scripts/evaluate.py DATA [--model models/<name>.keras] [--name NAME] [--out reports/<name>]
                               [--split testing] [--hop S] [--aggregate mean] [--batch-size 32]

DATA is a folder of class folders (real/ and fake/, or synonyms such as bonafide/spoof; searched recursively;
split folders such as testing/ are understood) or a manifest CSV with `path` and `label` columns (paths relative
to the CSV). Metrics are computed at the model's stored threshold and at this data's own EER point.
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
    from deepfake_detector.model.inference import add_scoring_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 report written, 1 no file could be scored, "
                                            "2 usage, model or data error")
    parser.add_argument("data", type=Path, metavar="DATA", help="labelled folder or manifest .csv")
    add_scoring_arguments(parser)
    parser.add_argument("--split", help="only this split (manifest 'split' column or split folders), "
                                        "e.g. testing")
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
        table = evaluation.load_labelled_data(args.data, args.split)
    except Exception as error:  # ModelError, EvaluationError, a bad flag, or Keras failing on a corrupt file
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    name = args.name or "_".join(filter(None, [detector.name, data_name(args.data), args.split]))
    out_dir = args.out or Path("reports") / name
    scores = evaluation.score_table(detector, table, args.hop, args.aggregate, args.batch_size)
    extra = {"model": detector.name, "model_path": str(detector.path),
             "model_trained_at": detector.metadata.get("trained_at"), "data": str(args.data),
             "split": args.split, "hop_s": params.hop_s,
             "aggregate": args.aggregate, "threshold_source": "model metadata"}
    title = f"{detector.name} on {data_name(args.data)}" + (f" ({args.split})" if args.split else "")
    try:
        summary = evaluation.write_evaluation(scores, detector.threshold, out_dir, title, extra)
    except evaluation.EvaluationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOTHING_SCORED
    headline = f", EER {summary['eer']:.3f}, ROC AUC {summary['roc_auc']:.3f}" if "eer" in summary else ""
    print(f"{title}: {summary['n']} files scored, {summary['n_failed']} failed{headline}, "
          f"accuracy {summary['at_threshold']['accuracy']:.3f} at threshold {detector.threshold:.4g}")
    print(f"report: {out_dir}/report.md")
    try:  # the model's card lists every report of this model found beside this one
        print(f"model card: {model_card.write_model_card(detector.path, out_dir.parent)}")
    except OSError as error:
        print(f"note: model card not updated ({error})", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
