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
so the event loop (and /health) stays responsive while a long file is scored; a request whose client has gone
away while it waited for a slot is dropped, not scored. A per-client upload-rate guard (serve/guard.py) answers
429 before reading the body of a client over its share; a refusal sent before the whole body was read drains a
bounded part of the rest (closing the connection when the rest is larger), so the client reads the status rather
than a reset.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from deepfake_detector import __version__
from deepfake_detector.data import audio, features
from deepfake_detector.model import explain as heatmaps
from deepfake_detector.model import inference, model_store
from deepfake_detector.model.model_store import Detector
from deepfake_detector.params import Params
from deepfake_detector.serve.guard import RateLimits, UploadRateGuard, retry_after_header
from deepfake_detector.serve.upload import SUPPORTED_FORMATS, UploadError, display_name, receive_file_field, \
    sniff_audio_format

WEB_DIR = Path(__file__).resolve().parent / "web"
# The page draws the whole-file spectrogram at most this many columns wide.
SPECTROGRAM_MAX_COLUMNS = 1200
_SNIFF_BYTES = 16
# After refusing an upload early, read (and discard) at most this much more of its body, for at most this long.
DRAIN_MAX_BYTES = 256 * 2**20
DRAIN_MAX_S = 30.0
# How often a request waiting for a scoring slot checks that its client is still there.
DISCONNECT_POLL_S = 0.25

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


def inspect_upload(received: Path, size: int, params: Params) -> Path:
    """Refuse an empty, unrecognised or over-large upload (declared length or decoded size: 413), reading only its
    header; return it renamed with its sniffed extension."""
    if size == 0:
        raise UploadError(422, "empty file (0 bytes)")
    with open(received, "rb") as stream:
        extension = sniff_audio_format(stream.read(_SNIFF_BYTES))
    if extension is None:
        raise UploadError(415, f"not a recognised audio file: its content is none of {SUPPORTED_FORMATS} "
                               "(the file name's extension is not trusted)")
    audio_path = received.with_name("audio" + extension)
    received.rename(audio_path)
    try:
        audio.probe(audio_path, params)
    except audio.AudioTooLarge as error:
        raise UploadError(413, f"audio {error}") from error
    except audio.AudioError as error:
        raise UploadError(422, str(error)) from error
    return audio_path


def spectrogram_data_url(waveform: np.ndarray, params: Params) -> str:
    """The whole waveform as a magma mel picture (features.colourise), at most ~1200 columns, as a PNG data URL."""
    # A hop of n / 1200 samples caps the width; the STFT stays small for long files instead of being shrunk later.
    hop = max(params.hop_length, math.ceil(len(waveform) / SPECTROGRAM_MAX_COLUMNS))
    picture = features.colourise(features.band_normalised(waveform, params.replace(hop_length=hop)))
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


def score_upload(detector: Detector, audio_path: Path) -> tuple[dict, np.ndarray]:
    """(predict_file's dict, waveform) for one stored upload; AudioError -> 422."""
    result, waveform = inference.load_and_score(detector, audio_path)
    if result["error"] is not None:
        raise UploadError(422, result["error"])
    return result, waveform


async def wait_for_slot(request: Request, gate: asyncio.Semaphore) -> None:
    """Take a scoring slot in arrival order, giving up (ClientDisconnect) as soon as the client has gone away."""
    # One acquire that stays queued (asyncio.Semaphore wakes waiters first come, first served): re-trying with a
    # timeout would send the request to the back of the queue at every check.
    acquire = asyncio.ensure_future(gate.acquire())
    try:
        while not (await asyncio.wait({acquire}, timeout=DISCONNECT_POLL_S))[0]:
            if await request.is_disconnected():
                raise ClientDisconnect()
    except BaseException:
        if acquire.done() and not acquire.cancelled():
            gate.release()  # got the slot just as we gave up: hand it on
        acquire.cancel()
        raise


async def drain(request: Request) -> dict[str, str]:
    """Read and discard what is left of the body (bounded in bytes and time), so the client sees our answer.

    Returns the headers the refusal needs: none when the body was read to its end (the connection stays usable),
    `Connection: close` when the drain gave up first.
    """
    drained, deadline = 0, time.monotonic() + DRAIN_MAX_S
    try:
        async for chunk in request.stream():
            drained += len(chunk)
            if drained > DRAIN_MAX_BYTES or time.monotonic() > deadline:
                return {"Connection": "close"}
    except (ClientDisconnect, RuntimeError):  # gone, or the stream was already consumed
        return {"Connection": "close"}
    return {}


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
        response = _error(error.status_code, str(error))
        response.headers.update(error.headers)
        return response

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
               upload_dir: Path | None = None, scoring_slots: int = 2,
               rate_limits: RateLimits = RateLimits(), max_explain_windows: int = 8) -> FastAPI:
    """Load the detector at `model_path` once and build the app. `upload_dir` None = the system temp folder."""
    limits = Limits(max_upload_mb=max_upload_mb, max_duration_s=max_duration_s,
                    max_explain_windows=max_explain_windows)
    detector = with_limits(model_store.load_detector(Path(model_path)), limits)
    _warm_up(detector)
    scoring_gate = asyncio.Semaphore(scoring_slots)
    guard = UploadRateGuard(rate_limits)
    health = health_record(detector, limits)
    health["limits"]["upload_rate"] = dataclasses.asdict(rate_limits)

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
        client = request.client.host if request.client else "unknown"
        retry_after = guard.admit(client)
        if retry_after is not None:
            raise UploadError(429, "too many uploads from this client: wait and retry",
                              headers={**retry_after_header(retry_after), **await drain(request)})
        try:
            return await _predict(request, client, spectrogram, explain_method)
        finally:
            guard.release(client)

    async def _predict(request: Request, client: str, spectrogram: bool, explain_method: str | None) -> dict:
        with tempfile.TemporaryDirectory(prefix="dfd-upload-", dir=upload_dir) as folder_name:
            folder = Path(folder_name)
            name = "upload"
            try:
                try:
                    with open(folder / "received", "wb") as destination:
                        client_name, size = await receive_file_field(
                            request.headers.get("content-type"), request.headers.get("content-length"),
                            request.stream(), destination, limits.max_upload_bytes)
                except UploadError as error:
                    error.headers.update(await drain(request))
                    raise
                name = display_name(client_name)
                audio_path = await run_in_threadpool(inspect_upload, folder / "received", size, detector.params)
                await wait_for_slot(request, scoring_gate)
                try:
                    result, waveform = await run_in_threadpool(score_upload, detector, audio_path)
                    if explain_method:  # still holding the slot: explaining runs the network many times
                        result["explanation"] = await run_in_threadpool(
                            explanation_record, detector, waveform, explain_method, limits.max_explain_windows)
                finally:
                    scoring_gate.release()
                if spectrogram:  # drawing the picture needs no model slot
                    result["spectrogram_png"] = await run_in_threadpool(spectrogram_data_url, waveform,
                                                                        detector.params)
            except ClientDisconnect as error:
                log.info("client %s went away; its upload was not scored", client)
                raise UploadError(400, "the upload was interrupted") from error
            except UploadError as error:
                raise UploadError(error.status_code, _scrub(str(error), folder, name), error.headers) from error
        result["file"] = name
        return result

    return app
