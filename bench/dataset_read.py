"""Time reading a corpus-sized protocol and checking that its audio exists (issue 13: seconds, not minutes).

Builds a synthetic ASVspoof 2019 LA root in a temporary folder: one train protocol of N lines (default 200,000;
a tenth bona fide, the rest spread over attacks A01-A06) with an empty .flac per line, minus 0.1% missing, plus
a few orphan files. Then times `datasets.read` (parse, one directory listing, join, labels, the table, the list of
missing and orphan files) against two baselines in the same run: the parse alone, and the parse with one
`Path.is_file()` stat per line (the obvious existence check, which builds no table and cannot find orphans).

    python bench/dataset_read.py [--lines 200000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepfake_detector import datasets
from deepfake_detector.datasets import asvspoof2019
from deepfake_detector.datasets.common import read_protocol


def build_root(root: Path, lines: int) -> tuple[int, int]:
    """Write the protocol and the (empty) audio files; return (missing, orphans)."""
    protocols = root / "LA" / asvspoof2019.PROTOCOL_FOLDER
    audio = root / "LA" / "ASVspoof2019_LA_train" / "flac"
    protocols.mkdir(parents=True)
    audio.mkdir(parents=True)
    rows, missing = [], 0
    for index in range(lines):
        utterance = f"LA_T_{index:07d}"
        bona_fide = index % 10 == 0
        rows.append(f"LA_{index % 20:04d} {utterance} - {'-' if bona_fide else f'A0{index % 6 + 1}'} "
                    f"{'bonafide' if bona_fide else 'spoof'}\n")
        if index % 1000 == 999:
            missing += 1
        else:
            (audio / f"{utterance}.flac").touch()
    orphans = 5
    for index in range(orphans):
        (audio / f"LA_T_orphan{index}.flac").touch()
    (protocols / asvspoof2019.SPLITS["train"][0]).write_text("".join(rows))
    return missing, orphans


def baseline(root: Path) -> tuple[int, int]:
    """Parse, then one stat per protocol line (rows found, lines without audio)."""
    protocol = root / "LA" / asvspoof2019.PROTOCOL_FOLDER / asvspoof2019.SPLITS["train"][0]
    audio = root / "LA" / "ASVspoof2019_LA_train" / "flac"
    found = sum((audio / f"{fields[1]}.flac").is_file() for _, fields in read_protocol(protocol, 5))
    return found, sum(1 for _ in open(protocol)) - found


def timed(function, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dataset_read_"))
    try:
        start = time.perf_counter()
        missing, orphans = build_root(work, args.lines)
        print(f"built {args.lines} protocol lines ({missing} without audio, {orphans} orphan files) "
              f"in {time.perf_counter() - start:.1f} s")
        protocol = work / "LA" / asvspoof2019.PROTOCOL_FOLDER / asvspoof2019.SPLITS["train"][0]
        parse_s, _ = timed(lambda: read_protocol(protocol, 5), args.repeats)
        base_s, (found, absent) = timed(lambda: baseline(work), args.repeats)
        read_s, (table, problems) = timed(lambda: datasets.read(work), args.repeats)
        assert len(table) == found == args.lines - missing and len(problems) == missing + orphans == absent + orphans
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        load = os.getloadavg()[0]
        print(f"commit {commit}, {time.strftime('%Y-%m-%d')}, best of {args.repeats}, warm file-system cache, "
              f"{os.cpu_count()} CPUs, load average {load:.1f}")
        print(f"{'method':<44} {'seconds':>8} {'vs baseline':>12}")
        print(f"{'parse only':<44} {parse_s:>8.2f} {base_s / parse_s:>11.2f}x")
        print(f"{'baseline: parse + Path.is_file() per line':<44} {base_s:>8.2f} {1.0:>11.2f}x")
        print(f"{'datasets.read (listing, join, table, problems)':<44} {read_s:>8.2f} {base_s / read_s:>11.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
