"""The web service: one loaded detector behind a small JSON API and a static single-page front end.

`create_app(model_path, ...)` loads the model once and returns a FastAPI app:

    GET  /          the page (src/deepfake_detector/web/)
    GET  /health    {status, model, version, threshold, device, limits, window_s}
    POST /predict   multipart field `file` -> inference.predict_file's dict for that upload
                    (?spectrogram=true adds `spectrogram_png`, a data URL of the whole file's mel picture;
                    ?explain=occlusion|gradcam|auto adds `explanation`: for the most suspect windows (at most
                    Limits.max_explain_windows) a heat-map overlay PNG data URL and the top regions in s and Hz)

Every refusal is a JSON body `{"error": reason}` with a 4xx status; an upload lives in a private temporary folder
that is removed when the request ends, whatever happens. Scoring runs in worker threads behind a small semaphore,
so the event loop (and /health) stays responsive while a long file is scored.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import logging
import math
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import soundfile
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from deepfake_detector import __version__
from deepfake_detector.data import features
from deepfake_detector.model import explain as heatmaps
from deepfake_detector.model import inference, model_store
from deepfake_detector.model.model_store import Detector
from deepfake_detector.params import Params
from deepfake_detector.serve.upload import SUPPORTED_FORMATS, UploadError, display_name, receive_file_field, \
    sniff_audio_format

WEB_DIR = Path(__file__).resolve().parent / "web"
# The page draws the whole-file spectrogram at most this many columns wide.
SPECTROGRAM_MAX_COLUMNS = 1200
_SNIFF_BYTES = 16

log = logging.getLogger("deepfake_detector.serve.service")


@dataclasses.dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 50.0
    max_duration_s: float = 600.0
    # Explaining costs one network call per window (Grad-CAM) or ~300 (occlusion): only the most suspect windows.
    max_explain_windows: int = 8

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def with_limits(detector: Detector, limits: Limits) -> Detector:
    """The detector with the service's (tighter) duration limit in its Params, so decoding enforces it too."""
    params = detector.params.replace(max_duration_s=min(detector.params.max_duration_s, limits.max_duration_s))
    return dataclasses.replace(detector, params=params)


def declared_duration_s(path: Path) -> float | None:
    """The duration a file's header declares, read without decoding; None when no header reader knows it."""
    try:
        return float(soundfile.info(str(path)).duration)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        pass
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    probe = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                            str(path)], capture_output=True, text=True, check=False, timeout=30)
    try:
        return float(probe.stdout.strip())
    except ValueError:
        return None


def inspect_upload(received: Path, size: int, limits: Limits) -> Path:
    """Refuse an empty, unrecognised or over-long upload; return it renamed with its sniffed extension."""
    if size == 0:
        raise UploadError(422, "empty file (0 bytes)")
    with open(received, "rb") as stream:
        extension = sniff_audio_format(stream.read(_SNIFF_BYTES))
    if extension is None:
        raise UploadError(415, f"not a recognised audio file: its content is none of {SUPPORTED_FORMATS} "
                               "(the file name's extension is not trusted)")
    audio_path = received.with_name("audio" + extension)
    received.rename(audio_path)
    duration_s = declared_duration_s(audio_path)
    if duration_s is not None and duration_s > limits.max_duration_s:
        raise UploadError(413, f"audio too long: {duration_s:.0f} s > limit {limits.max_duration_s:g} s")
    return audio_path


def spectrogram_data_url(waveform: np.ndarray, params: Params) -> str:
    """The whole waveform as a magma mel picture (features.colourise), at most ~1200 columns, as a PNG data URL."""
    # A hop of n / 1200 samples caps the width; the STFT stays small for long files instead of being shrunk later.
    hop = max(params.hop_length, math.ceil(len(waveform) / SPECTROGRAM_MAX_COLUMNS))
    picture = features.colourise(features.mel_normalised(waveform, params.replace(hop_length=hop)))
    buffer = io.BytesIO()
    Image.fromarray(picture, mode="RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def explanation_record(detector: Detector, waveform: np.ndarray, method: str, max_windows: int) -> dict:
    """heatmaps.explain_waveform for the most suspect windows, each with its overlay as a PNG data URL."""
    explanation = heatmaps.explain_waveform(detector, waveform, detector.params, method, max_windows)
    for window in explanation["windows"]:
        title = f"window {window['start']:.1f}-{window['end']:.1f} s: p_fake {window['p_fake']:.3f} ({method})"
        window["overlay_png"] = _png_data_url(heatmaps.render_overlay(
            window["picture"], window["heat"], detector.params, window["start"], window["regions"], title, method,
            size=(7.0, 3.0), spectrogram_panel=False))  # one panel: half the drawing time per window
    return heatmaps.json_ready(explanation)


def score_upload(detector: Detector, audio_path: Path, scoring_gate: threading.BoundedSemaphore,
                 with_spectrogram: bool, explain_method: str | None = None, max_explain_windows: int = 8) -> dict:
    """predict_file's dict for one stored upload (plus its spectrogram and explanation on request); AudioError
    -> 422."""
    with scoring_gate:  # only the decode + network steps are rationed; drawing the picture needs no model
        result, waveform = inference.load_and_score(detector, audio_path)
        if result["error"] is not None:
            raise UploadError(422, result["error"])
        if explain_method is not None:
            result["explanation"] = explanation_record(detector, waveform, explain_method, max_explain_windows)
    if with_spectrogram:
        result["spectrogram_png"] = spectrogram_data_url(waveform, detector.params)
    return result


def resolve_explain_method(requested: str | None, detector: Detector) -> str | None:
    """None, a method name, or "auto": Grad-CAM (one network call per window) when the model has a convolutional
    feature map, occlusion otherwise. An unknown name or Grad-CAM on a model without a feature map -> 422."""
    if requested is None:
        return None
    if requested == "auto":
        try:
            heatmaps.last_feature_map_layer(detector.model)
            return "gradcam"
        except ValueError:
            return "occlusion"
    if requested not in heatmaps.METHODS:
        raise UploadError(422, f"unknown explain method '{requested}'; choose one of: auto, "
                               f"{', '.join(heatmaps.METHODS)}")
    if requested == "gradcam":
        try:
            heatmaps.last_feature_map_layer(detector.model)
        except ValueError as error:
            raise UploadError(422, str(error)) from error
    return requested


def _scrub(reason: str, folder: Path, name: str) -> str:
    # Decoder messages quote the file they opened; show the user's name instead of the server's temp path.
    for audio_path in sorted(folder.glob("*"), key=lambda path: -len(str(path))):
        reason = reason.replace(str(audio_path), name)
    return reason.replace(str(folder), "")


def device_name() -> str:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "cpu"


def health_record(detector: Detector, limits: Limits) -> dict:
    commit = detector.metadata.get("git_commit")
    version = f"{__version__}+{commit[:7]}" if commit else __version__
    return {"status": "ok", "model": detector.name, "version": version, "threshold": detector.threshold,
            "device": device_name(), "window_s": detector.params.window_s,
            "limits": dataclasses.asdict(limits)}


def _error(status_code: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status_code)


def _add_error_handlers(app: FastAPI) -> None:
    async def refused(_request, error: UploadError):
        return _error(error.status_code, str(error))

    async def http_error(_request, error: HTTPException):
        return _error(error.status_code, str(error.detail))

    async def invalid_request(_request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        return _error(422, f"invalid request: {problems}")

    async def unexpected(_request, error: Exception):
        # A bug, not bad input: log the traceback here, never send it to the client.
        log.exception("unhandled error", exc_info=error)
        return _error(500, "internal error: the server could not process this request")

    app.add_exception_handler(UploadError, refused)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)


def _warm_up(detector: Detector) -> None:
    # Builds Keras' predict function once, before concurrent requests could race to build it.
    detector.model.predict_on_batch(np.zeros((1, *detector.params.png_shape), dtype=np.uint8))


def create_app(model_path: Path, max_upload_mb: float = 50.0, max_duration_s: float = 600.0,
               upload_dir: Path | None = None, scoring_slots: int = 2, max_explain_windows: int = 8) -> FastAPI:
    """Load the detector at `model_path` once and build the app. `upload_dir` None = the system temp folder."""
    limits = Limits(max_upload_mb=max_upload_mb, max_duration_s=max_duration_s,
                    max_explain_windows=max_explain_windows)
    detector = with_limits(model_store.load_detector(Path(model_path)), limits)
    _warm_up(detector)
    scoring_gate = threading.BoundedSemaphore(scoring_slots)
    health = health_record(detector, limits)

    # No /docs: Swagger UI loads from a CDN and the service must work offline; /openapi.json stays.
    app = FastAPI(title="Deepfake speech detector", version=__version__, docs_url=None, redoc_url=None)
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/health")
    async def health_check():
        return health

    @app.post("/predict")
    async def predict(request: Request, spectrogram: bool = False, explain: str | None = None):
        explain_method = resolve_explain_method(explain, detector)
        with tempfile.TemporaryDirectory(prefix="dfd-upload-", dir=upload_dir) as folder_name:
            folder = Path(folder_name)
            name = "upload"
            try:
                with open(folder / "received", "wb") as destination:
                    client_name, size = await receive_file_field(
                        request.headers.get("content-type"), request.headers.get("content-length"),
                        request.stream(), destination, limits.max_upload_bytes)
                name = display_name(client_name)
                audio_path = await run_in_threadpool(inspect_upload, folder / "received", size, limits)
                result = await run_in_threadpool(score_upload, detector, audio_path, scoring_gate, spectrogram,
                                                 explain_method, limits.max_explain_windows)
            except ClientDisconnect as error:
                raise UploadError(400, "the upload was interrupted") from error
            except UploadError as error:
                raise UploadError(error.status_code, _scrub(str(error), folder, name)) from error
        result["file"] = name
        return result

    return app
