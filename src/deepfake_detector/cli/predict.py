"""Call audio files real or fake with a trained detector.

    python scripts/predict.py FILE_OR_DIR... [--model models/<name>.keras] [--hop 2] [--aggregate mean]
                              [--json OUT] [--csv OUT] [--plot DIR] [--batch-size 32]
                              [--explain DIR [--explain-method occlusion|gradcam] [--explain-windows N]]

Folders are searched recursively for audio files. Exit status: 0 every file was scored, 1 at least one file
could not be used (its row says why; the others are still scored), 2 usage or model error (nothing scored).
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_OK, EXIT_FILE_ERRORS, EXIT_USAGE = 0, 1, 2


def parse_args(argv):
    from deepfake_detector.model.inference import add_scoring_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 all files scored, 1 some files failed, "
                                            "2 usage or model error")
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR", help="audio files or folders")
    add_scoring_arguments(parser)
    parser.add_argument("--window", type=float,
                        help="window length in seconds; must equal the model's (checked, never changed)")
    parser.add_argument("--json", type=Path, metavar="OUT",
                        help="write results: a JSON array if OUT ends in .json, else JSON lines")
    parser.add_argument("--csv", type=Path, metavar="OUT", help="write a CSV summary, one row per file")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write a spectrogram + p_fake timeline per file")
    parser.add_argument("--explain", type=Path, metavar="DIR",
                        help="write a heat-map overlay per file (what drove the score, in s and Hz) and add the "
                             "top regions to the JSON")
    parser.add_argument("--explain-method", choices=("occlusion", "gradcam"), default="occlusion",
                        help="occlusion (any model; ~300 network calls per window) or gradcam (conv models; one "
                             "call per window). Default: occlusion")
    parser.add_argument("--explain-windows", type=int, metavar="N",
                        help="explain only the N highest-scoring windows of each file (default: all)")
    return parser.parse_args(argv)


def write_explanation(detector, result: dict, waveform, params, args, taken_names: set) -> None:
    """Explain one scored file: the overlay PNG into --explain, the regions into its result."""
    from deepfake_detector.io_utils import atomic_write_bytes
    from deepfake_detector.model import explain
    from deepfake_detector.report import predictions

    explanation, picture, heat = explain.file_explanation(detector, waveform, params, args.explain_method,
                                                          args.explain_windows)
    out_png = predictions.unique_plot_path(args.explain, Path(result["file"]), taken_names)
    title = (f"{Path(result['file']).name}: {result['label']} (p_fake {result['p_fake']:.3f}), "
             f"{args.explain_method}, model {result['model']}")
    atomic_write_bytes(out_png, explain.render_overlay(picture, heat, params, 0.0, explanation["regions"], title,
                                                       args.explain_method))
    result["explanation"] = {**explain.json_ready(explanation), "overlay": str(out_png)}


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepfake_detector.model import inference
    from deepfake_detector.report import predictions

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.explain_windows is not None and args.explain_windows < 1:
        print("error: --explain-windows must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        detector, params = inference.detector_from_args(args, Path("models"), args.window)
    except Exception as error:  # model_store.ModelError, a bad flag, or Keras failing on a corrupt file
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    files = inference.find_audio_files(args.paths)
    if not files:
        print(f"error: no audio files ({', '.join(inference.AUDIO_EXTENSIONS)}) found", file=sys.stderr)
        return EXIT_USAGE

    results, taken_plot_names, taken_explain_names = [], set(), set()
    for result, waveform in inference.predict_files(detector, files, args.hop, args.aggregate, args.batch_size):
        results.append(result)
        if args.plot and waveform is not None:
            out_png = predictions.unique_plot_path(args.plot, Path(result["file"]), taken_plot_names)
            inference.plot_timeline(result, waveform, params, out_png)
        if args.explain and waveform is not None and result["error"] is None:
            write_explanation(detector, result, waveform, params, args, taken_explain_names)

    print(predictions.format_table(results))
    if args.json:
        predictions.write_json(results, args.json)
    if args.csv:
        predictions.write_csv(results, args.csv)
    return EXIT_FILE_ERRORS if any(result["error"] for result in results) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
