"""Serve the detector: a JSON API (/health, /predict) and a web page at / (uvicorn, loads the model once)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None,
                        help="a trained models/<name>.keras (default: the newest one in models/)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest accepted upload (default 50)")
    parser.add_argument("--max-duration-s", type=float, default=600.0,
                        help="longest accepted audio in seconds (default 600)")
    parser.add_argument("--max-explain-windows", type=int, default=8,
                        help="windows explained per request with ?explain= (the most suspect ones; default 8)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvicorn

    from deepfake_detector.model import model_store
    from deepfake_detector.serve import service

    try:
        model_path = args.model or model_store.latest_model(Path("models"))
        if args.max_explain_windows < 1:
            raise ValueError("--max-explain-windows must be at least 1")
        app = service.create_app(model_path, args.max_upload_mb, args.max_duration_s,
                                 max_explain_windows=args.max_explain_windows)
    except (model_store.ModelError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"serving {model_path} on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
