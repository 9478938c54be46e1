"""Serve the detector: a JSON API (/health, /predict) and a web page at / (uvicorn, loads the model once)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepfake_detector.serve.guard import RateLimits


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
    rate = RateLimits()
    parser.add_argument("--uploads-per-minute", type=float, default=rate.per_minute,
                        help=f"uploads one client address may make per minute, on average (default {rate.per_minute:g}; "
                             "0 turns the guard off)")
    parser.add_argument("--upload-burst", type=int, default=rate.burst,
                        help=f"uploads one client may make at once before the per-minute rate applies "
                             f"(default {rate.burst})")
    parser.add_argument("--uploads-in-flight", type=int, default=rate.in_flight,
                        help=f"uploads one client may have in progress at a time (default {rate.in_flight})")
    parser.add_argument("--max-explain-windows", type=int, default=8,
                        help="windows explained per request with ?explain= (the most suspect ones; default 8)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from deepfake_detector.model import model_store
    from deepfake_detector.serve import server, service

    try:
        model_path = args.model or model_store.latest_model(Path("models"))
        if args.max_explain_windows < 1:
            raise ValueError("--max-explain-windows must be at least 1")
        rate_limits = RateLimits(args.uploads_per_minute, args.upload_burst, args.uploads_in_flight)
        app = service.create_app(model_path, args.max_upload_mb, args.max_duration_s, rate_limits=rate_limits,
                                 max_explain_windows=args.max_explain_windows)
    except (model_store.ModelError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"serving {model_path} on http://{args.host}:{args.port}/", file=sys.stderr)
    server.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
