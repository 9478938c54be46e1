"""The page in a real headless Chromium: upload a clip, see verdict, spectrogram and chart; phone width too."""
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from tiny_detector import save_tiny_detector

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")


def write_babble(path: Path, seconds: float = 14.0, sample_rate: int = 16000) -> Path:
    """Syllable-like harmonic bursts with a gliding pitch, so the spectrogram has visible structure."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 2
    noise = 0.01 * np.random.default_rng(0).standard_normal(len(t))
    soundfile.write(str(path), (0.25 * voice * syllables + noise).astype(np.float32), sample_rate)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    import uvicorn

    from deepfake_detector.serve import service

    model_path = save_tiny_detector(tmp_path_factory.mktemp("model"))
    app = service.create_app(model_path, upload_dir=tmp_path_factory.mktemp("uploads"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


COUNT_COLOURS = """(selector) => {
    const canvas = document.querySelector(selector);
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) colours.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
    return colours.size;
}"""


def canvas_ink(page, selector: str) -> int:
    """How many distinct colours the canvas holds (a blank canvas has one)."""
    return page.evaluate(COUNT_COLOURS, selector)


def upload_and_wait(page, clip: Path) -> None:
    page.set_input_files("#file-input", str(clip))
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    # The spectrogram picture is decoded asynchronously; wait until it has been drawn (magma has many colours).
    page.wait_for_function(f"({COUNT_COLOURS})('#spectrogram') > 50", timeout=10_000)


def check_result_page(page) -> None:
    verdict = page.inner_text("#verdict")
    assert verdict in ("Likely synthetic (fake)", "Likely human (real)")
    assert "%" in page.inner_text("#score-line")
    assert "threshold" in page.inner_text("#threshold-line")
    assert page.inner_text("#file-name") == "babble.wav"
    assert canvas_ink(page, "#chart") > 20
    assert canvas_ink(page, "#spectrogram") > 50
    assert page.is_visible("#player")


def test_desktop_upload_shows_verdict_spectrogram_and_chart(server_url, browser, tmp_path):
    clip = write_babble(tmp_path / "babble.wav")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server_url)
    page.wait_for_function("document.getElementById('limits').textContent.includes('MB')")
    upload_and_wait(page, clip)
    check_result_page(page)
    page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)

    # Clicking the middle of the chart seeks the player there.
    box = page.locator("#chart").bounding_box()
    page.mouse.click(box["x"] + 48 + (box["width"] - 62) / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 7) < 0.5", timeout=10_000)
    # ... and shows the explanation of the window under the click (1 s windows: 6-7 s or 7-8 s).
    caption = page.inner_text("#explain-caption")
    assert caption.startswith(("Window 6.0 s – 7.0 s", "Window 7.0 s – 8.0 s")), caption
    page.close()


def test_the_most_suspect_window_is_explained_and_the_span_marked(server_url, browser, tmp_path):
    clip = write_babble(tmp_path / "babble.wav")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server_url)
    upload_and_wait(page, clip)
    assert page.is_visible("#explain-panel") and page.is_visible("#suspect-line")
    assert "Most suspect part" in page.inner_text("#suspect-line")
    page.wait_for_function("document.getElementById('overlay').naturalWidth > 400", timeout=10_000)
    # The 8 most suspect of the 14 windows are explained; one of the other two says so when clicked.
    result_windows = page.evaluate("fetch('/health').then(r => r.json()).then(h => h.limits.max_explain_windows)")
    assert result_windows == 8
    page.screenshot(path=str(tmp_path / "explained.png"), full_page=True)
    page.close()


def test_phone_width_layout(server_url, browser, tmp_path):
    clip = write_babble(tmp_path / "babble.wav")
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto(server_url)
    upload_and_wait(page, clip)
    check_result_page(page)
    # Nothing may overflow sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    context.close()


def test_bad_file_shows_the_servers_reason(server_url, browser, tmp_path):
    fake_wav = tmp_path / "notes.wav"
    fake_wav.write_text("these are meeting notes, not audio\n" * 20)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server_url)
    page.set_input_files("#file-input", str(fake_wav))
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    message = page.inner_text("#error")
    assert "notes.wav" in message and "not a recognised audio file" in message
    assert page.is_hidden("#result")
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
    page.close()
