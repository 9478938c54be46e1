"""Call audio files real or fake with a trained detector.

    python scripts/predict.py FILE_OR_DIR... [--model models/<name>.keras] [--hop 2] [--aggregate mean]
                              [--json OUT] [--csv OUT] [--plot DIR] [--batch-size 32]

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
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepfake_detector.model import inference
    from deepfake_detector.report import predictions

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
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

    results, taken_plot_names = [], set()
    for result, waveform in inference.predict_files(detector, files, args.hop, args.aggregate, args.batch_size):
        results.append(result)
        if args.plot and waveform is not None:
            out_png = predictions.unique_plot_path(args.plot, Path(result["file"]), taken_plot_names)
            inference.plot_timeline(result, waveform, params, out_png)

    print(predictions.format_table(results))
    if args.json:
        predictions.write_json(results, args.json)
    if args.csv:
        predictions.write_csv(results, args.csv)
    return EXIT_FILE_ERRORS if any(result["error"] for result in results) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
