"""Reliability benchmark: repeat the fuzz, load and kill attack of issue 17 against our own server on 127.0.0.1.

Every phase is bounded in count and time and talks only to loopback addresses (127.0.0.1 and, for the second
client of the fairness phase, 127.0.0.2). Phases and what they print:

1. fuzz: `--fuzz` uploads (default 1,000) of seeded mutations of valid WAV/FLAC/Ogg/MP3 (and M4A when ffmpeg is
   installed) files, hostile names and broken multipart envelopes -> responses by status (5xx must be 0);
2. memory: server peak RSS (server plus its child processes, sampled every 10 ms) above its idle level while it
   handles a normal clip (the baseline), a FLAC decompression bomb (192 kHz x 8 ch x `--bomb-seconds` of silence)
   and an ID3-prefixed HLS playlist naming a watched named pipe 2,000 times -> MB, ratio to the baseline, and how
   often the named pipe was opened (must be 0);
3. burst and sustained load: `--burst` requests at once, then `--concurrency` clients for `--sustain-s` seconds
   -> statuses, p50/p95/p99 latency, requests/s;
4. fairness: a greedy client (`--concurrency` threads) and a polite one (one upload at a time from another
   loopback address), with the upload-rate guard off and on -> the polite client's p95 latency and statuses;
5. leaks: upload temp files left and open descriptors gained over all phases;
6. kill -9 of the renderer mid-run -> pool workers still alive 10 s later, and files reused by the rerun.

    python bench/reliability.py [--model M.keras] [--fuzz 1000] [--burst 200] [--concurrency 10]
                                [--sustain-s 60] [--fair-s 20] [--bomb-seconds 600] [--json OUT]

Exits 1 when a promise is broken: any 5xx or unanswered fuzz case, a named-pipe open, a bomb or playlist peak
of 200 MB or more, a leaked temp file, or an orphaned worker.
"""
import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import numpy as np
import soundfile

from deepfake_detector.io_utils import child_pids, pid_alive
from serve_load import free_port, percentile, start_server, stop_server, untrained_baseline, wait_until_healthy, \
    write_clip

MEMORY_LIMIT_MB = 200.0
CACHE = PROJECT_ROOT / ".cache" / "bench"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained .keras model (default: untrained baseline)")
    parser.add_argument("--fuzz", type=int, default=1000, help="fuzzed uploads (default 1000)")
    parser.add_argument("--burst", type=int, default=200, help="requests sent at once (default 200)")
    parser.add_argument("--concurrency", type=int, default=10, help="clients in the sustained and fairness phases")
    parser.add_argument("--sustain-s", type=float, default=60.0, help="length of the sustained phase")
    parser.add_argument("--fair-s", type=float, default=20.0, help="length of each fairness run")
    parser.add_argument("--bomb-seconds", type=float, default=600.0, help="declared length of the bomb FLAC")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------- inputs

def encoded(clip: np.ndarray, rate: int, audio_format: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, clip, rate, format=audio_format, subtype=subtype)
    return buffer.getvalue()


def seed_files(clip_path: Path, work: Path) -> dict[str, bytes]:
    """The valid files the fuzzer mutates."""
    clip, rate = soundfile.read(str(clip_path), dtype="float32")
    seeds = {"wav": clip_path.read_bytes(), "flac": encoded(clip, rate, "FLAC"),
             "ogg": encoded(clip, rate, "OGG", "VORBIS"), "mp3": encoded(clip, rate, "MP3", "MPEG_LAYER_III")}
    if shutil.which("ffmpeg"):
        m4a = work / "seed.m4a"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip_path), "-c:a", "aac", str(m4a)], check=True)
        seeds["m4a"] = m4a.read_bytes()
    return seeds


MAGICS = [b"RIFF\x00\x00\x00\x00WAVEfmt ", b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"ID3\x04\x00\x00",
          b"\xff\xfb\x90\x64", b"\xff\xf1\x50\x80", b"\x00\x00\x00\x20ftypM4A ", b"FORM\x00\x00\x10\x00AIFF",
          b"\x1a\x45\xdf\xa3"]
HOSTILE_NAMES = ["../../etc/passwd", "..\\..\\boot.ini", "a" * 2000 + ".wav", "\x00nul.wav", "con.wav",
                 "<script>alert(1)</script>.mp3", "réunion\u202eevil.wav", "", "/dev/zero", "clip.wav\r\nX-Hack: 1"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One seeded mutation of a valid file: byte flips, cuts, splices, header damage or foreign magic."""
    data = bytearray(data)
    kind = rng.randrange(8)
    if kind == 0:  # flip bytes anywhere
        for _ in range(rng.randint(1, 64)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # damage the header only
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(min(64, len(data)))] = rng.randrange(256)
    elif kind == 2:  # truncate
        data = data[:rng.randrange(len(data))]
    elif kind == 3:  # a foreign magic number in front of garbage
        data = bytearray(rng.choice(MAGICS) + rng.randbytes(rng.randint(0, 4096)))
    elif kind == 4:  # duplicate a slice (chunk sizes stop matching)
        start = rng.randrange(len(data))
        data[start:start] = data[start:start + rng.randint(1, 4096)]
    elif kind == 5:  # extreme header fields (rate, channels, sizes)
        for offset in range(4, min(48, len(data)) - 4, 4):
            if rng.random() < 0.3:
                data[offset:offset + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
    elif kind == 6:  # empty or a single byte
        data = bytearray(rng.choice([b"", b"\x00", b"R"]))
    else:  # the file is fine: only the name is hostile
        pass
    return bytes(data)


def fuzz_request(seeds: dict[str, bytes], rng: random.Random) -> dict:
    """httpx.post keyword arguments for one fuzz case: a mutated file, sometimes in a broken envelope."""
    payload = mutate(seeds[rng.choice(sorted(seeds))], rng)
    name = rng.choice(HOSTILE_NAMES) if rng.random() < 0.3 else "upload.wav"
    envelope = rng.randrange(10)
    if envelope >= 5:
        return {"files": {"file": (name, payload, "application/octet-stream")}}
    boundary = {0: "b" * 300, 1: "", 2: "x", 3: "\u00e9\u00e8", 4: "b" * 70}[envelope]
    header = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name[:300]}"\r\n\r\n'
              .encode("utf-8", "replace"))
    body = header + payload + (f"\r\n--{boundary}--\r\n".encode() if rng.random() < 0.7 else b"")
    return {"content": body, "headers": {"content-type": f"multipart/form-data; boundary={boundary}".encode()}}


def bomb_flac(seconds: float) -> Path:
    """A FLAC of silence at 192 kHz x 8 channels (~1 MB per 600 s); cached, since encoding takes a while."""
    path = CACHE / f"bomb_192k_8ch_{seconds:g}s.flac"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        block = np.zeros((192_000, 8), dtype=np.int16)
        with soundfile.SoundFile(str(path) + ".tmp", "w", 192_000, 8, format="FLAC", subtype="PCM_16") as sound:
            for _ in range(int(seconds)):
                sound.write(block)
        os.replace(str(path) + ".tmp", path)
    return path


class FifoWatch:
    """A named pipe that counts how often anybody opens it (each open is served an empty read)."""

    def __init__(self, path: Path):
        self.path, self.opens, self._stop = path, 0, threading.Event()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            with open(self.path, "wb"):
                if not self._stop.is_set():
                    self.opens += 1

    def close(self) -> int:
        self._stop.set()
        reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread.join(timeout=5)
        os.close(reader)
        return self.opens


# ---------------------------------------------------------------------------------------------- measuring

def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants (ffmpeg children count too)."""
    total_kb, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total_kb += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        except (OSError, StopIteration):
            continue
        pending += child_pids(current)
    return total_kb / 1024


def peak_memory_during(pid: int, action) -> tuple[float, object]:
    """(peak MB above the level just before, action's result), sampling every 10 ms while `action` runs."""
    before, peak, done = tree_rss_mb(pid), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return max(0.0, peak[0] - before), result


def post(client: httpx.Client, url: str, **request) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        status = client.post(url, **request).status_code
    except httpx.HTTPError:
        status = 0  # no answer at all
    except (ValueError, TypeError):
        status = -1  # the client library refused to send it: not the server's doing
    return status, time.perf_counter() - started


def latency_summary(results: list[tuple[int, float]]) -> dict:
    latencies = [latency for _, latency in results]
    return {"statuses": dict(sorted(Counter(status for status, _ in results).items())),
            "p50_s": round(statistics.median(latencies), 3), "p95_s": round(percentile(latencies, 0.95), 3),
            "p99_s": round(percentile(latencies, 0.99), 3)}


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------------------------------------- phases

def fuzz_phase(url: str, seeds: dict[str, bytes], count: int, seed: int) -> dict:
    rng = random.Random(seed)
    cases = [fuzz_request(seeds, rng) for _ in range(count)]
    with httpx.Client(timeout=120) as client, ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: post(client, f"{url}/predict", **case), cases))
    statuses = Counter(status for status, _ in results)
    return {"cases": count, "statuses": dict(sorted(statuses.items())),
            "5xx": sum(n for status, n in statuses.items() if status >= 500),
            "unanswered": statuses.get(0, 0)}


def memory_phase(url: str, server_pid: int, clip: bytes, bomb: Path, work: Path) -> dict:
    with httpx.Client(timeout=300) as client:
        def upload(name, data):
            return lambda: post(client, f"{url}/predict", files={"file": (name, data, "application/octet-stream")})

        baseline_mb, (baseline_status, _) = peak_memory_during(server_pid, upload("clip.wav", clip))
        bomb_mb, (bomb_status, _) = peak_memory_during(server_pid, upload("bomb.flac", bomb.read_bytes()))
        watched = FifoWatch(work / "server_side_media.wav")
        playlist = ("#EXTM3U\n#EXT-X-TARGETDURATION:4\n" + f"#EXTINF:4,\n{watched.path}\n" * 2000
                    + "#EXT-X-ENDLIST\n").encode()
        upload_bytes = b"ID3\x03\x00\x00\x00\x00\x00\x00" + playlist
        playlist_mb, (playlist_status, _) = peak_memory_during(server_pid, upload("list.mp3", upload_bytes))
        opens = watched.close()
    return {"baseline_clip": {"status": baseline_status, "peak_mb": round(baseline_mb, 1)},
            "bomb": {"status": bomb_status, "peak_mb": round(bomb_mb, 1), "bytes": bomb.stat().st_size},
            "playlist": {"status": playlist_status, "peak_mb": round(playlist_mb, 1), "bytes": len(upload_bytes),
                         "named_pipe_opens": opens}}


def burst_phase(url: str, clip: bytes, count: int) -> dict:
    barrier = threading.Barrier(count)
    limits = httpx.Limits(max_connections=count)
    with httpx.Client(timeout=600, limits=limits) as client, ThreadPoolExecutor(max_workers=count) as pool:
        def one(_):
            barrier.wait()
            return post(client, f"{url}/predict", files={"file": ("clip.wav", clip)})

        results = list(pool.map(one, range(count)))
    return {"requests": count, **latency_summary(results)}


def sustained_phase(url: str, clip: bytes, concurrency: int, seconds: float, max_requests: int = 20_000) -> dict:
    deadline, results, lock = time.monotonic() + seconds, [], threading.Lock()

    def client_loop(client):
        while time.monotonic() < deadline and len(results) < max_requests:
            outcome = post(client, f"{url}/predict", files={"file": ("clip.wav", clip)})
            with lock:
                results.append(outcome)

    started = time.perf_counter()
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client, \
            ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda _: client_loop(client), range(concurrency)))
    wall_s = time.perf_counter() - started
    return {"concurrency": concurrency, "seconds": round(wall_s, 1), "requests": len(results),
            "requests_per_s": round(len(results) / wall_s, 2), **latency_summary(results)}


def fairness_phase(url: str, clip: bytes, concurrency: int, seconds: float) -> dict:
    """A greedy client hammering from 127.0.0.1 while a polite one uploads one file at a time from 127.0.0.2."""
    deadline, greedy, polite, lock = time.monotonic() + seconds, [], [], threading.Lock()

    def greedy_loop(client):
        while time.monotonic() < deadline:
            outcome = post(client, f"{url}/predict", files={"file": ("clip.wav", clip)})
            with lock:
                greedy.append(outcome)
            if outcome[0] == 429:
                time.sleep(0.1)  # a refused greedy client ignores Retry-After and comes straight back

    def polite_loop():
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(timeout=600, transport=transport) as client:
            while time.monotonic() < deadline:
                polite.append(post(client, f"{url}/predict", files={"file": ("clip.wav", clip)}))
                time.sleep(0.5)

    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client, \
            ThreadPoolExecutor(max_workers=concurrency + 1) as pool:
        futures = [pool.submit(greedy_loop, client) for _ in range(concurrency)] + [pool.submit(polite_loop)]
        for future in futures:
            future.result()
    return {"greedy": latency_summary(greedy), "polite": latency_summary(polite)}


def kill_phase(work: Path, files: int = 16) -> dict:
    """kill -9 of generate_spectrograms.py mid-run: orphaned workers and files kept for the rerun."""
    source = work / "render-in" / "real"
    source.mkdir(parents=True)
    for index in range(files):
        write_clip(source / f"clip{index:02d}.wav", 8.0)
    output = work / "render-out"
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "generate_spectrograms.py"), "--input",
               str(source.parent), "--output", str(output), "--jobs", "2"]
    renderer = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 300, []
    try:
        while len({path.name.split("__")[0] for path in output.glob("images/real/*.png")}) < 3:
            if renderer.poll() is not None or time.monotonic() > deadline:
                return {"error": "the render ended before it could be killed"}
            time.sleep(0.05)
        workers = child_pids(renderer.pid)
    finally:
        renderer.kill()
        renderer.wait()
    time.sleep(10)
    orphans = [pid for pid in workers if pid_alive(pid)]
    for pid in orphans:  # clean up after a failure, so the benchmark itself leaves nothing behind
        os.kill(pid, 9)
    rerun = subprocess.run(command[:-2] + ["--jobs", "1"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    summary = rerun.stdout.strip().splitlines()[0] if rerun.stdout.strip() else rerun.stderr[-300:]
    return {"workers_at_kill": len(workers), "orphaned_after_10s": len(orphans), "rerun": summary}


# ---------------------------------------------------------------------------------------------- main

def run_server(model: Path, temp_dir: Path, log_path: Path, options: tuple[str, ...]):
    port = free_port()
    server = start_server(model, port, temp_dir, log_path, options)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, server)
    return server, url


def phase(name: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    figures: dict = {"command": " ".join(["python", "bench/reliability.py", *(argv or sys.argv[1:])])}
    with tempfile.TemporaryDirectory(prefix="reliability-") as work_name:
        work = Path(work_name)
        server_temp = work / "server-tmp"
        server_temp.mkdir()
        model = args.model or untrained_baseline(work)
        clip_path = write_clip(work / "clip.wav", 5.0)
        clip = clip_path.read_bytes()
        seeds = seed_files(clip_path, work)
        bomb = bomb_flac(args.bomb_seconds)

        server, url = run_server(model, server_temp, work / "server.log", ("--uploads-per-minute", "0"))
        try:
            post(httpx.Client(timeout=120), f"{url}/predict", files={"file": ("warm.wav", clip)})
            descriptors_before = open_descriptors(server.pid)
            phase("memory")
            figures["memory"] = memory_phase(url, server.pid, clip, bomb, work)
            phase("fuzz")
            figures["fuzz"] = fuzz_phase(url, seeds, args.fuzz, args.seed)
            phase("burst")
            figures["burst"] = burst_phase(url, clip, args.burst)
            phase("sustained")
            figures["sustained"] = sustained_phase(url, clip, args.concurrency, args.sustain_s)
            phase("fairness, guard off")
            figures["fairness_guard_off"] = fairness_phase(url, clip, args.concurrency, args.fair_s)
            time.sleep(2)
            figures["leaks"] = {"temp_files_left": len(list(server_temp.iterdir())),
                                "descriptors_gained": open_descriptors(server.pid) - descriptors_before}
        finally:
            stop_server(server)
        server, url = run_server(model, server_temp, work / "server-guarded.log", ())
        try:
            phase("fairness, guard on (defaults)")
            figures["fairness_guard_on"] = fairness_phase(url, clip, args.concurrency, args.fair_s)
        finally:
            stop_server(server)
        figures["leaks"]["temp_files_left"] += len(list(server_temp.iterdir()))
        phase("kill -9 of the renderer")
        figures["kill"] = kill_phase(work)

    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    memory = figures["memory"]
    broken = (figures["fuzz"]["5xx"] or figures["fuzz"]["unanswered"] or memory["playlist"]["named_pipe_opens"]
              or memory["bomb"]["peak_mb"] >= MEMORY_LIMIT_MB or memory["playlist"]["peak_mb"] >= MEMORY_LIMIT_MB
              or figures["leaks"]["temp_files_left"] or figures["kill"].get("orphaned_after_10s", 1))
    return 1 if broken else 0


def report(figures: dict) -> None:
    memory, baseline = figures["memory"], max(figures["memory"]["baseline_clip"]["peak_mb"], 0.1)
    print(f"command: {figures['command']}")
    print(f"fuzz       {figures['fuzz']['cases']} cases by status {figures['fuzz']['statuses']}: "
          f"{figures['fuzz']['5xx']} x 5xx, {figures['fuzz']['unanswered']} unanswered")
    for name in ("baseline_clip", "bomb", "playlist"):
        entry = memory[name]
        print(f"memory     {name:<14} status {entry['status']}  peak +{entry['peak_mb']:.1f} MB "
              f"({entry['peak_mb'] / baseline:.2f}x the clip)"
              + (f", named pipe opened {entry['named_pipe_opens']} times" if "named_pipe_opens" in entry else ""))
    for name in ("burst", "sustained"):
        entry = figures[name]
        rate = f", {entry['requests_per_s']} req/s" if "requests_per_s" in entry else ""
        print(f"{name:<10} {entry['requests']} requests {entry['statuses']}: p50 {entry['p50_s']} s, "
              f"p95 {entry['p95_s']} s, p99 {entry['p99_s']} s{rate}")
    off, on = figures["fairness_guard_off"], figures["fairness_guard_on"]
    print(f"fairness   polite client p95 {off['polite']['p95_s']} s with the guard off, {on['polite']['p95_s']} s "
          f"with it on ({off['polite']['p95_s'] / max(on['polite']['p95_s'], 1e-3):.2f}x faster); greedy client "
          f"statuses off {off['greedy']['statuses']}, on {on['greedy']['statuses']}; polite on "
          f"{on['polite']['statuses']}")
    print(f"leaks      {figures['leaks']['temp_files_left']} temp files left, "
          f"{figures['leaks']['descriptors_gained']} descriptors gained")
    print(f"kill -9    {figures['kill']}")


if __name__ == "__main__":
    sys.exit(main())
