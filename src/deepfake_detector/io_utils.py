"""Atomic file writes, content hashing and worker-process hygiene shared by every stage.

A killed run must never leave a half-written file that a later run trusts, so every output is written to a
temporary file in the same folder and renamed into place (rename is atomic on POSIX file systems). Nor may it
leave worker processes behind: pool workers call `exit_with_parent` so they die with the run that started them.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_tmp_counter = itertools.count()
PARENT_POLL_S = 1.0


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name no other process or thread uses (pid + a per-process counter), created exclusively with the mode a
    # plain open() gives (0666 minus umask): half the system calls of mkstemp + chmod, which counts at one
    # write per rendered picture.
    while True:  # a leftover of a killed process that had this pid is skipped, never overwritten
        tmp_path = path.with_name(f".{path.name}.{os.getpid()}.{next(_tmp_counter)}.tmp")
        try:
            os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pool_context() -> multiprocessing.context.BaseContext:
    """The start method for worker pools: fork while TensorFlow is not loaded (workers inherit the imported
    modules, no start-up cost), spawn once it is. Forking a process whose TensorFlow threads are running copies
    their locks mid-use: a render pool forked after training died with "mutex.cc: Check w->waitp->cond ==
    nullptr failed" (BrokenProcessPool) in the generalisation benchmark. Spawned workers import what they need,
    so the calling script needs the usual `if __name__ == "__main__":` guard."""
    if "tensorflow" not in sys.modules and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def exit_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when `parent_pid` dies, even by kill -9, which runs no cleanup code.

    Linux: the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG). Everywhere, and as a fallback,
    a daemon thread exits the process once it has been re-parented. The check after prctl covers a parent that
    died before it was set.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch_parent():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch_parent, name="exit-with-parent", daemon=True).start()


def child_pids(parent_pid: int) -> list[int]:
    """The live processes whose parent is `parent_pid` (Linux /proc; [] elsewhere)."""
    children = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == parent_pid and fields[0] != "Z":
            children.append(int(stat_file.parent.name))
    return children


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, waiting to be reaped) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
