"""Load test: many concurrent /predict uploads against our own server on 127.0.0.1, within a time limit.

Starts `scripts/serve.py` in a subprocess (its temp folder pointed at a fresh directory so leftover upload files
can be counted), waits for /health, sends `--requests` uploads of one synthetic clip from `--concurrency` threads
while a side thread keeps timing /health, then stops the server and prints requests/s, p50/p95 latency, the
number of non-2xx answers and of temp files left behind. Exits 1 when either count is not 0.

    python bench/serve_load.py [--model models/<name>.keras] [--requests 200] [--concurrency 8]
                               [--clip-seconds 5] [--time-limit 600] [--spectrogram]

Without --model an untrained baseline with default Params is built (weights do not change the speed).
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "src"))

import httpx
import numpy as np
import soundfile


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained .keras model (default: untrained baseline)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--clip-seconds", type=float, default=5.0, help="length of the uploaded clip")
    parser.add_argument("--time-limit", type=float, default=600.0, help="stop sending after this many seconds")
    parser.add_argument("--spectrogram", action="store_true", help="ask for the page's spectrogram too")
    return parser.parse_args(argv)


def untrained_baseline(folder: Path) -> Path:
    from deepfake_detector.model import model_store, models
    from deepfake_detector.params import Params

    model_path = folder / "baseline_untrained.keras"
    model_store.save_detector(models.build_model("baseline", Params()), model_path, Params(), threshold=0.5)
    return model_path


def write_clip(path: Path, seconds: float, sample_rate: int = 16000) -> Path:
    """Seeded noise under a gliding harmonic tone: valid, non-silent speech-band audio."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = 2 * np.pi * np.cumsum(150.0 + 50.0 * np.sin(2 * np.pi * 0.3 * t)) / sample_rate
    signal = 0.2 * sum(np.sin(k * phase) / k for k in range(1, 6))
    signal += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    soundfile.write(str(path), signal.astype(np.float32), sample_rate)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: Path, port: int, temp_dir: Path, log_path: Path,
                 options: tuple[str, ...] = ("--uploads-per-minute", "0")) -> subprocess.Popen:
    # TMPDIR steers tempfile in the server, so every upload folder it makes lands in temp_dir. The upload-rate
    # guard is off by default here: every request comes from one address, and capacity is what is measured.
    environment = {**os.environ, "TMPDIR": str(temp_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "scripts" / "serve.py"), "--model", str(model),
             "--host", "127.0.0.1", "--port", str(port), *options],
            cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)


def wait_until_healthy(base_url: str, server: subprocess.Popen, timeout_s: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode} before answering /health")
        try:
            return httpx.get(f"{base_url}/health", timeout=2.0).json()
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"server did not answer /health within {timeout_s:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def watch_health(base_url: str, stop: threading.Event, latencies: list[float]) -> None:
    """Time /health twice a second while the load runs: it must stay quick while files are scored."""
    with httpx.Client(timeout=30.0) as client:
        while not stop.wait(0.5):
            started = time.perf_counter()
            client.get(f"{base_url}/health").raise_for_status()
            latencies.append(time.perf_counter() - started)


def run_load(base_url: str, clip: bytes, args) -> tuple[list[float], list[int], float, int]:
    """Send the uploads; returns (latencies, status codes, wall seconds, requests not sent in time)."""
    url = f"{base_url}/predict" + ("?spectrogram=true" if args.spectrogram else "")
    deadline = time.monotonic() + args.time_limit
    latencies, statuses = [], []
    lock = threading.Lock()

    def one_request(client: httpx.Client) -> None:
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        try:
            status = client.post(url, files={"file": ("load.wav", clip, "audio/wav")}).status_code
        except httpx.HTTPError:
            status = 0  # no answer at all counts as a failure
        with lock:
            latencies.append(time.perf_counter() - started)
            statuses.append(status)

    limits = httpx.Limits(max_connections=args.concurrency)
    with httpx.Client(timeout=args.time_limit, limits=limits) as client:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            wait([pool.submit(one_request, client) for _ in range(args.requests)])
        wall_s = time.perf_counter() - started
    return latencies, statuses, wall_s, args.requests - len(statuses)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as work_name:
        work = Path(work_name)
        server_temp = work / "server-tmp"
        server_temp.mkdir()
        model = args.model or untrained_baseline(work)
        clip_path = write_clip(work / "load.wav", args.clip_seconds)
        base_url = f"http://127.0.0.1:{free_port()}"
        server = start_server(model, int(base_url.rsplit(":", 1)[1]), server_temp, work / "server.log")
        health_latencies, stop = [], threading.Event()
        try:
            health = wait_until_healthy(base_url, server)
            watcher = threading.Thread(target=watch_health, args=(base_url, stop, health_latencies), daemon=True)
            watcher.start()
            latencies, statuses, wall_s, unsent = run_load(base_url, clip_path.read_bytes(), args)
            stop.set()
            watcher.join(timeout=35)
        except RuntimeError as error:
            print(f"error: {error}\n{(work / 'server.log').read_text()[-2000:]}", file=sys.stderr)
            return 1
        finally:
            stop.set()
            stop_server(server)
        leftovers = sorted(path.name for path in server_temp.iterdir())

    failures = sum(1 for status in statuses if not 200 <= status < 300)
    print(f"model {health['model']} on {health['device']}, {args.clip_seconds:g} s WAV clip, "
          f"{len(statuses)} requests ({unsent} not sent before the {args.time_limit:g} s limit), "
          f"{args.concurrency} concurrent, spectrogram {'on' if args.spectrogram else 'off'}")
    print(f"wall time        {wall_s:.1f} s")
    print(f"throughput       {len(statuses) / wall_s:.2f} requests/s "
          f"({len(statuses) * args.clip_seconds / wall_s:.1f} s of audio per second)")
    print(f"latency          p50 {statistics.median(latencies):.2f} s, p95 {percentile(latencies, 0.95):.2f} s, "
          f"max {max(latencies):.2f} s")
    if health_latencies:
        print(f"/health latency  p50 {statistics.median(health_latencies) * 1000:.0f} ms, "
              f"max {max(health_latencies) * 1000:.0f} ms over {len(health_latencies)} checks during the load")
    print(f"non-2xx answers  {failures}")
    print(f"temp files left  {len(leftovers)}{'  ' + ', '.join(leftovers[:5]) if leftovers else ''}")
    return 0 if failures == 0 and not leftovers and unsent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
