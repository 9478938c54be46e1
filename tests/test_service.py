"""The web service through FastAPI's TestClient: good clips, every kind of bad upload, limits, concurrency."""
import asyncio
import base64
import io
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import write_tone
from deepfake_detector import __version__
from deepfake_detector.data import features
from deepfake_detector.model import inference, model_store
from deepfake_detector.serve import service, upload
from tiny_detector import TINY_PARAMS, save_tiny_detector


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_tiny_detector(tmp_path_factory.mktemp("model"))


@pytest.fixture
def upload_dir(tmp_path) -> Path:
    """Where the app keeps uploads; every test ends with nothing left in it."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    yield folder
    assert list(folder.iterdir()) == [], "the service left upload files behind"


@pytest.fixture
def make_client(model_path, upload_dir):
    def build(raise_server_exceptions: bool = True, **limits) -> TestClient:
        app = service.create_app(model_path, upload_dir=upload_dir, **limits)
        return TestClient(app, raise_server_exceptions=raise_server_exceptions)

    return build


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def post_file(client: TestClient, name: str, data: bytes, query: str = ""):
    return client.post(f"/predict{query}", files={"file": (name, data, "application/octet-stream")})


def assert_refused(response, status_code: int, *phrases: str) -> str:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body) == {"error"}
    for phrase in phrases:
        assert phrase in body["error"]
    assert "Traceback" not in body["error"] and "dfd-upload" not in body["error"]
    return body["error"]


# ---- health and good clips -----------------------------------------------------------------------------------------

def test_health_reports_model_version_threshold_and_device(client):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["model"] == "tiny"
    assert health["version"].startswith(__version__)
    assert health["threshold"] == 0.5
    assert health["device"] == "cpu" or "GPU" in health["device"]
    assert health["limits"] == {"max_upload_mb": 50.0, "max_duration_s": 600.0, "max_explain_windows": 8,
                                "upload_rate": {"per_minute": 120.0, "burst": 20, "in_flight": 2}}


def test_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "Deepfake speech detector" in page.text
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200


def test_good_clip_gives_the_same_result_as_predict_file(client, model_path, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 3.5, noise=0.05)
    response = post_file(client, "my clip.wav", clip.read_bytes())
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == set(inference.RESULT_KEYS)
    expected = inference.predict_file(model_store.load_detector(model_path), clip)
    assert result["file"] == "my clip.wav"
    assert result["error"] is None and result["label"] == expected["label"]
    assert result["p_fake"] == pytest.approx(expected["p_fake"], abs=1e-6)
    assert result["duration_s"] == pytest.approx(3.5)
    # 1 s windows every second plus one flush with the end: 0, 1, 2 and 2.5 s.
    n_samples = int(3.5 * TINY_PARAMS.sample_rate)
    assert len(result["windows"]) == len(features.window_starts(n_samples, TINY_PARAMS)) == 4
    assert [window["start"] for window in result["windows"]] == pytest.approx([0, 1, 2, 2.5])
    assert all(0 <= window["p_fake"] <= 1 for window in result["windows"])


@pytest.mark.parametrize("method, expected", [("gradcam", "gradcam"), ("occlusion", "occlusion"),
                                              ("auto", "gradcam")])
def test_explain_adds_overlays_and_regions_for_the_most_suspect_windows(make_client, tmp_path, method, expected):
    client = make_client(max_explain_windows=2)
    clip = write_tone(tmp_path / "clip.wav", 3.5, noise=0.05)
    result = post_file(client, "clip.wav", clip.read_bytes(), f"?explain={method}").json()
    explanation = result["explanation"]
    assert explanation["method"] == expected
    top_two = sorted(result["windows"], key=lambda window: -window["p_fake"])[:2]
    assert sorted(w["start"] for w in explanation["windows"]) == pytest.approx(sorted(w["start"] for w in top_two))
    for window in explanation["windows"]:
        assert set(window) == {"index", "start", "end", "p_fake", "regions", "overlay_png"}
        assert result["windows"][window["index"]]["start"] == pytest.approx(window["start"])
        overlay = Image.open(io.BytesIO(base64.b64decode(window["overlay_png"].split(",", 1)[1])))
        assert overlay.width > 400 and overlay.height > 250
        for region in window["regions"]:
            assert window["start"] <= region["start"] < region["end"] <= window["end"] + 1e-6
    assert "explanation" not in post_file(client, "clip.wav", clip.read_bytes()).json()


def test_unknown_explain_method_is_refused(client, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 1.0)
    assert_refused(post_file(client, "clip.wav", clip.read_bytes(), "?explain=magic"), 422, "unknown explain method")


@pytest.mark.parametrize("audio_format", ["FLAC", "OGG", "MP3", "AIFF"])
def test_other_containers_are_sniffed_and_scored(client, tmp_path, audio_format):
    clip = write_tone(tmp_path / f"clip.{audio_format.lower()}", 2.0)
    # A misleading name: the content decides how it is decoded.
    response = post_file(client, "clip.wav", clip.read_bytes())
    assert response.status_code == 200, response.text
    assert response.json()["duration_s"] == pytest.approx(2.0, abs=0.1)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_m4a_is_decoded_through_ffmpeg(client, tmp_path):
    source = write_tone(tmp_path / "clip.wav", 2.0)
    m4a = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-c:a", "aac", str(m4a)], check=True)
    response = post_file(client, "voice memo.m4a", m4a.read_bytes())
    assert response.status_code == 200, response.text
    assert response.json()["file"] == "voice memo.m4a"


def test_spectrogram_is_a_png_data_url_of_the_whole_clip(client, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 3.0)
    result = post_file(client, "clip.wav", clip.read_bytes(), "?spectrogram=true").json()
    prefix = "data:image/png;base64,"
    assert result["spectrogram_png"].startswith(prefix)
    picture = Image.open(io.BytesIO(base64.b64decode(result["spectrogram_png"][len(prefix):])))
    assert picture.mode == "RGB" and picture.height == TINY_PARAMS.n_mels
    assert picture.width == 1 + int(3.0 * TINY_PARAMS.sample_rate) // TINY_PARAMS.hop_length


def test_spectrogram_of_a_long_clip_is_capped_in_width():
    waveform = np.random.default_rng(0).standard_normal(TINY_PARAMS.sample_rate * 300).astype(np.float32)
    data_url = service.spectrogram_data_url(waveform, TINY_PARAMS)
    picture = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    assert service.SPECTROGRAM_MAX_COLUMNS - 10 <= picture.width <= service.SPECTROGRAM_MAX_COLUMNS + 1


# ---- bad input -----------------------------------------------------------------------------------------------------

def _silent_wav(folder: Path) -> bytes:
    return write_tone(folder / "silent.wav", 2.0, amplitude=0.0).read_bytes()


def _short_wav(folder: Path) -> bytes:
    return write_tone(folder / "short.wav", 0.2).read_bytes()


def _truncated_wav(folder: Path) -> bytes:
    return write_tone(folder / "full.wav", 2.0).read_bytes()[:40]


BAD_UPLOADS = {
    "empty": (lambda folder: b"", 422, "empty file"),
    "text named .wav": (lambda folder: b"just some notes\n" * 50, 415, "not a recognised audio file"),
    "truncated wav": (_truncated_wav, 422, "not a readable audio file"),
    "silent": (_silent_wav, 422, "silent"),
    "too short": (_short_wav, 422, "too short"),
}


@pytest.mark.parametrize("kind", BAD_UPLOADS)
def test_bad_uploads_are_refused_with_a_reason(client, tmp_path, kind):
    make_bytes, status_code, phrase = BAD_UPLOADS[kind]
    error = assert_refused(post_file(client, "upload.wav", make_bytes(tmp_path)), status_code, phrase)
    assert str(tmp_path) not in error


def test_a_request_without_the_file_field_is_refused(client):
    assert_refused(client.post("/predict", files={"other": ("a.wav", b"RIFF")}), 422, "'file'")
    assert_refused(client.post("/predict", content=b"RIFF....WAVE", headers={"content-type": "audio/wav"}),
                   415, "multipart/form-data")


def test_unknown_paths_and_bad_query_values_answer_json(client, tmp_path):
    assert_refused(client.get("/nowhere"), 404, "Not Found")
    clip = write_tone(tmp_path / "clip.wav", 1.0).read_bytes()
    assert_refused(post_file(client, "clip.wav", clip, "?spectrogram=perhaps"), 422, "spectrogram")


def test_oversized_upload_is_refused_with_413(make_client, tmp_path):
    client = make_client(max_upload_mb=0.05)
    clip = write_tone(tmp_path / "clip.wav", 3.0)  # 16 kHz float32: ~190 KB > 51 KB
    assert_refused(post_file(client, "clip.wav", clip.read_bytes()), 413, "too large", "0.05 MB")


def test_overlong_audio_is_refused_with_413(make_client, tmp_path):
    client = make_client(max_duration_s=2.0)
    clip = write_tone(tmp_path / "clip.wav", 3.0)
    assert_refused(post_file(client, "clip.wav", clip.read_bytes()), 413, "too long", "maximum 2 s")
    assert post_file(client, "ok.wav", write_tone(tmp_path / "ok.wav", 1.5).read_bytes()).status_code == 200


def test_an_internal_failure_is_a_json_500_without_traceback(make_client, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(inference, "load_and_score", broken)
    client = make_client(raise_server_exceptions=False)
    error = assert_refused(post_file(client, "clip.wav", write_tone(tmp_path / "c.wav", 1.0).read_bytes()), 500)
    assert "simulated bug" not in error


# ---- upload helpers ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("head, extension", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", ".wav"), (b"fLaC\x00\x00\x00\x22", ".flac"), (b"OggS\x00\x02", ".ogg"),
    (b"ID3\x04\x00\x00", ".mp3"), (b"\xff\xfb\x90\x64", ".mp3"), (b"\xff\xf1\x50\x80", ".aac"),
    (b"\x00\x00\x00\x20ftypM4A ", ".m4a"), (b"FORM\x00\x00\x10\x00AIFF", ".aiff"),
    (b"<html><body>", None), (b"PK\x03\x04", None), (b"RIFF\x24\x00\x00\x00AVI ", None), (b"", None),
])
def test_sniff_audio_format_reads_magic_bytes(head, extension):
    assert upload.sniff_audio_format(head) == extension


@pytest.mark.parametrize("client_name, shown", [
    ("../../etc/passwd.wav", "passwd.wav"), ("C:\\Users\\me\\talk.mp3", "talk.mp3"),
    ("<script>alert(1)</script>.wav", "script_.wav"), ("", "upload"), (None, "upload"), ("...", "upload"),
    ("a" * 300 + ".flac", "a" * 115 + ".flac"), ("réunion été.ogg", "réunion été.ogg"),
])
def test_display_name_never_carries_a_path(client_name, shown):
    assert upload.display_name(client_name) == shown


def test_path_in_the_uploaded_name_is_dropped(client, tmp_path):
    clip = write_tone(tmp_path / "clip.wav", 1.0).read_bytes()
    assert post_file(client, "../../../tmp/evil.wav", clip).json()["file"] == "evil.wav"


async def _chunks(count: int, size: int, consumed: list):
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    for _ in range(count):
        consumed.append(size)
        yield b"x" * size


def _receive(content_length, consumed: list, max_bytes: int = 256 * 1024):
    body = _chunks(100, 64 * 1024, consumed)
    return asyncio.run(upload.receive_file_field("multipart/form-data; boundary=b", content_length, body,
                                                 io.BytesIO(), max_bytes))


def test_an_oversized_stream_is_abandoned_early():
    consumed = []
    with pytest.raises(upload.UploadError) as refusal:
        _receive(None, consumed)
    assert refusal.value.status_code == 413
    # The cap plus the multipart slack, not the 6.4 MB offered.
    assert sum(consumed) <= 256 * 1024 + upload.MULTIPART_SLACK_BYTES + 64 * 1024


def test_a_declared_oversized_body_is_refused_before_reading():
    consumed = []
    with pytest.raises(upload.UploadError) as refusal:
        _receive(str(10 * 2**20), consumed)
    assert refusal.value.status_code == 413 and consumed == []


# ---- concurrency ---------------------------------------------------------------------------------------------------

def test_concurrent_uploads_all_succeed(make_client, tmp_path):
    from deepfake_detector.serve.guard import RateLimits

    # The test client is one address standing for several users: let it have them all in flight.
    client = make_client(scoring_slots=2, rate_limits=RateLimits(in_flight=6))
    clip = write_tone(tmp_path / "clip.wav", 2.5, noise=0.05).read_bytes()
    with client, ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda index: post_file(client, f"clip{index}.wav", clip), range(6)))
    assert [response.status_code for response in responses] == [200] * 6
    assert len({response.json()["p_fake"] for response in responses}) == 1


def test_health_answers_while_a_file_is_being_scored(make_client, tmp_path, monkeypatch):
    scoring_started, release = threading.Event(), threading.Event()
    real_load_and_score = inference.load_and_score

    def slow_load_and_score(*args, **kwargs):
        scoring_started.set()
        release.wait(timeout=30)
        return real_load_and_score(*args, **kwargs)

    monkeypatch.setattr(inference, "load_and_score", slow_load_and_score)
    client = make_client()
    clip = write_tone(tmp_path / "clip.wav", 1.5).read_bytes()
    with client, ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(post_file, client, "clip.wav", clip)
        assert scoring_started.wait(timeout=30)
        assert client.get("/health").status_code == 200
        assert not pending.done()
        release.set()
        assert pending.result(timeout=60).status_code == 200


# ---- hostile input (issue 17) --------------------------------------------------------------------------------------

def test_a_boundary_over_256_characters_is_a_json_400_not_a_500(make_client):
    client = make_client(raise_server_exceptions=False)
    boundary = "b" * 300
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
            f"RIFF\r\n--{boundary}--\r\n").encode()
    response = client.post("/predict", content=body,
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert_refused(response, 400, "malformed multipart body")


def test_a_decompression_bomb_is_refused_413_from_its_header(client):
    from test_audio_hardening import flac_declaring

    bomb = flac_declaring(192_000, 8, 1.0, 600 * 192_000)  # declares 921.6 M samples in ~0.1 MB
    assert_refused(post_file(client, "bomb.flac", bomb), 413, "decoded size too large")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_a_flac_without_declared_length_is_scored_like_the_command_line_does(client, model_path, tmp_path):
    from test_audio_hardening import flac_declaring

    unknown = tmp_path / "unknown.flac"
    unknown.write_bytes(flac_declaring(16_000, 1, 2.0, 0))
    response = post_file(client, "unknown.flac", unknown.read_bytes())
    assert response.status_code == 200, response.text
    expected = inference.predict_file(model_store.load_detector(model_path), unknown)
    assert response.json()["p_fake"] == pytest.approx(expected["p_fake"], abs=1e-6)
    assert response.json()["duration_s"] == pytest.approx(2.0)


def test_the_rate_guard_refills_and_caps_uploads_in_flight():
    from deepfake_detector.serve.guard import RateLimits, UploadRateGuard

    now = [0.0]
    guard = UploadRateGuard(RateLimits(per_minute=60, burst=2, in_flight=2), clock=lambda: now[0])
    assert guard.admit("greedy") is None and guard.admit("greedy") is None
    assert guard.admit("greedy") == pytest.approx(1.0)  # two in flight: wait
    guard.release("greedy"), guard.release("greedy")
    assert guard.admit("greedy") == pytest.approx(1.0)  # bucket empty: one token per second
    assert guard.admit("polite") is None  # another client is not affected
    now[0] = 1.0
    assert guard.admit("greedy") is None


def test_a_client_over_its_upload_rate_gets_429_with_retry_after(make_client, tmp_path):
    from deepfake_detector.serve.guard import RateLimits

    client = make_client(rate_limits=RateLimits(per_minute=0.6, burst=2, in_flight=2))  # refills 1 per 100 s
    clip = write_tone(tmp_path / "clip.wav", 1.0).read_bytes()
    assert [post_file(client, "c.wav", clip).status_code for _ in range(2)] == [200, 200]
    refused = post_file(client, "c.wav", clip)
    assert_refused(refused, 429, "too many uploads")
    assert 1 <= int(refused.headers["retry-after"]) <= 100


@pytest.fixture
def live_server(model_path, upload_dir):
    """A real uvicorn server on a free loopback port: (base URL, host, port)."""
    from deepfake_detector.serve import server

    def start(**options):
        return server.serving_in_thread(service.create_app(model_path, upload_dir=upload_dir, **options))

    return start


def _raw_exchange(url: str, request: bytes, timeout: float = 30.0) -> tuple[int, dict, bytes]:
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_malformed_http_is_answered_in_the_json_error_shape(live_server):
    import json

    with live_server() as url:
        status, headers, body = _raw_exchange(url, b"GET /health HTTP/1.1\r\nthis line has no colon\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert "malformed HTTP request" in json.loads(body)["error"]


def test_an_early_413_is_read_by_the_client_not_reset(live_server):
    import json

    payload = b"x" * (3 * 2**20)
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n' + payload +
            b"\r\n--b--\r\n")
    request = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with live_server(max_upload_mb=0.05) as url:
        status, headers, reply = _raw_exchange(url, request)
    assert status == 413 and headers["content-type"] == "application/json"
    assert "too large" in json.loads(reply)["error"]


def test_a_request_abandoned_while_waiting_is_never_scored(live_server, tmp_path, monkeypatch):
    import httpx
    import socket
    from urllib.parse import urlsplit

    scored, release = [], threading.Event()
    real_load_and_score = inference.load_and_score

    def recording_load_and_score(*args, **kwargs):
        scored.append(args[1])
        if len(scored) == 1:
            release.wait(timeout=30)  # hold the only slot
        return real_load_and_score(*args, **kwargs)

    monkeypatch.setattr(inference, "load_and_score", recording_load_and_score)
    clip = write_tone(tmp_path / "clip.wav", 1.0).read_bytes()
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.wav"\r\n\r\n' + clip + b"\r\n--b--\r\n")
    with live_server(scoring_slots=1) as url, ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(httpx.post, f"{url}/predict", files={"file": ("a.wav", clip)}, timeout=60)
        deadline = time.monotonic() + 30
        while not scored and time.monotonic() < deadline:
            time.sleep(0.05)
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port)) as abandoned:
            abandoned.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                              b"boundary=b\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(1.0)  # received and waiting for the slot
        time.sleep(1.0)  # the client is gone
        release.set()
        assert first.result(timeout=60).status_code == 200
        time.sleep(1.0)
    assert len(scored) == 1, "a request whose client had left was scored"
