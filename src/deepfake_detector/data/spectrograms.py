"""Stage 1: render every audio file of a dataset root into fixed-size magma mel-spectrogram PNGs.

The root is read by `deepfake_detector.datasets` (class folders, Fake-or-Real, a CSV manifest, ASVspoof 2019/
2021/5, In-the-Wild, WaveFake, MLAAD; detected or forced with `layout`). The official split goes into the
manifest's `official_split` column; the dataset's group (speaker), attack and metadata columns follow the
fixed columns, so splitting and evaluation can use them. Protocol lines without audio and audio no protocol
names are listed in errors.csv beside the files that failed to render.

Outputs in the output folder: `images/<class>/<stem>__<sha256[:10]>__w<NNN>.png`, `manifest.csv` (one row per
image), `errors.csv` (one row per rejected file, and per audio-named entry that is not a readable regular file: FIFOs,
dangling symlinks, unreadable folders) and `params.json`. A rerun reuses a file's images when the manifest, or
the progress journal, lists them with the same content hash and feature hash and they all exist, so a killed run
resumes. The journal (`progress.jsonl`) gets one line per rendered file as soon as it is done, so a kill loses
at most the files in progress; it is folded into the manifest at the end of a run and deleted. Pool workers die
with the run (io_utils.exit_with_parent), even when it is killed with -9.

Across machines: `generate(..., shard=(I, N))` renders only the files whose content hash falls in shard I of N
(and writes `shard.json`); `merge_shards` joins N such folders into one.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from deepfake_detector import datasets
from deepfake_detector.data import audio, features
from deepfake_detector.io_utils import atomic_path, atomic_write_text, exit_with_parent, pool_context, sha256_file
from deepfake_detector.params import AUDIO_EXTENSIONS, Params

MANIFEST_COLUMNS = [
    "png_path", "class", "source_path", "source_sha256", "window_index", "start_s", "end_s",
    "source_duration_s", "original_sample_rate", "channels", "params_hash", "official_split",
]
ERROR_COLUMNS = ["file", "reason"]
IMAGES_FOLDER = "images"
JOURNAL_NAME = "progress.jsonl"


class SpectrogramError(Exception):
    """The run cannot start or produced nothing; str(error) is a one-line reason."""


@dataclasses.dataclass(frozen=True)
class SourceFile:
    path: Path
    class_name: str  # 'real' or 'fake'
    official_split: str  # 'train', 'val', 'test' or '' when the layout has none
    sha256: str | None = None  # content hash when already computed (select_shard), so no file is hashed twice


@dataclasses.dataclass
class FileOutcome:
    source: SourceFile
    rows: list[dict]
    status: str  # 'rendered', 'reused' or 'failed'
    reason: str = ""


@dataclasses.dataclass
class RunSummary:
    rendered: int
    reused: int
    failed: int
    images: int
    errors: list[tuple[str, str]]
    dataset_problems: int = 0  # protocol lines without audio and audio without a protocol line


# ---------------------------------------------------------------------------------------------- discovery

def discover_sources(root: Path, layout: str | None = None,
                     strict: bool = False) -> tuple[list[SourceFile], pd.DataFrame, list[tuple[str, str]]]:
    """(sources sorted by path, the dataset table, its problems) of a dataset root; raises datasets.DatasetError."""
    table, problems = datasets.read(root, layout, strict)
    sources = [SourceFile(Path(path), label, split)
               for path, label, split in zip(table["path"], table["label"], table["split"])]
    return sources, table, problems


def with_dataset_columns(rows: list[dict], table: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """Add the dataset's group, attack and metadata values to each manifest row; also return those columns."""
    columns = [column for column in table.columns if column not in ("path", "label", "split")]
    by_path = table.set_index("path")[columns].to_dict("index")
    return [{**row, **by_path.get(row["source_path"], {})} for row in rows], columns


def unusable_entries(input_dir: Path) -> list[tuple[str, str]]:
    """(path, reason) for what a scan must skip but list: audio-named entries that are not regular files (FIFOs,
    sockets, devices, dangling symlinks: never opened, since opening a FIFO blocks) and folders it cannot read."""
    found = []

    def unreadable_folder(error: OSError) -> None:
        found.append((str(error.filename), f"unreadable folder: {error.strerror or error}"))

    for folder, subfolders, names in os.walk(input_dir, onerror=unreadable_folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]  # hidden folders are never data
        for name in names:
            path = Path(folder, name)
            if path.suffix.lower() not in AUDIO_EXTENSIONS or path.is_file():
                continue
            try:
                audio.check_regular_file(path, max_file_mb=math.inf)
            except audio.AudioError as error:
                found.append((str(path.absolute()), str(error)))
    return found


# ---------------------------------------------------------------------------------------------- rendering

def png_name(source: SourceFile, sha256: str, window_index: int) -> str:
    return f"{source.path.stem}__{sha256[:10]}__w{window_index:03d}.png"


def render_file(source: SourceFile, output_dir: Path, params: Params, previous_rows: list[dict]) -> FileOutcome:
    """Render one file's windows (or reuse them when nothing changed); never raises on bad audio."""
    try:
        sha256 = source.sha256 or sha256_file(source.path)
    except OSError as error:
        return FileOutcome(source, [], "failed", f"unreadable: {error.strerror or error}")
    if _reusable(previous_rows, source, sha256, output_dir, params):
        return FileOutcome(source, previous_rows, "reused")
    try:
        waveform, info = audio.load_audio(source.path, params)
        images, windows = features.waveform_to_images(waveform, params)  # (n_windows, n_mels, frames, 3)
    except audio.AudioError as error:
        return FileOutcome(source, [], "failed", str(error))
    rows = []
    for image, window in zip(images, windows):
        relative_png = Path(IMAGES_FOLDER, source.class_name, png_name(source, sha256, window.index))
        features.save_png(image, output_dir / relative_png)
        rows.append({
            "png_path": relative_png.as_posix(), "class": source.class_name, "source_path": str(source.path),
            "source_sha256": sha256, "window_index": window.index, "start_s": round(window.start_s, 4),
            "end_s": round(window.end_s, 4), "source_duration_s": round(info.duration_s, 4),
            "original_sample_rate": info.original_sample_rate, "channels": info.channels,
            "params_hash": params.feature_hash(), "official_split": source.official_split,
        })
    return FileOutcome(source, rows, "rendered")


def _reusable(rows: list[dict], source: SourceFile, sha256: str, output_dir: Path, params: Params) -> bool:
    if not rows:
        return False
    indices = sorted(int(row["window_index"]) for row in rows)
    return (
        indices == list(range(len(rows)))
        and all(row["source_sha256"] == sha256 and row["params_hash"] == params.feature_hash()
                and row["class"] == source.class_name and row["official_split"] == source.official_split
                for row in rows)
        and all((output_dir / row["png_path"]).is_file() for row in rows)
    )


def _render_task(task: tuple) -> FileOutcome:
    # Top-level so worker processes can unpickle it.
    return render_file(*task)


def _init_worker(parent_pid: int) -> None:
    exit_with_parent(parent_pid)  # no orphans (~285 MB each) after the run is killed
    # One window's matrices are small: a second BLAS thread only spins (measured 1.6x slower in-process on a
    # busy 2-CPU machine), and pool workers already use every core.
    threadpool_limits(1)


def _outcomes(tasks: list[tuple], jobs: int):
    """Yield FileOutcomes as they finish: in-process for one job, else in a process pool."""
    if jobs <= 1:
        with threadpool_limits(1):  # restored when the run ends
            yield from map(_render_task, tasks)
        return
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=pool_context(),
                                                initializer=_init_worker, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_render_task, task) for task in tasks]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


# ---------------------------------------------------------------------------------------------- bookkeeping

def check_params_folder(output_dir: Path, params: Params, force: bool) -> None:
    """Refuse to mix images rendered with different settings in one folder unless `force`."""
    saved_path = output_dir / "params.json"
    if force or not saved_path.is_file():
        return
    try:
        saved = Params.load(saved_path)
    except ValueError as error:
        raise SpectrogramError(f"{saved_path} is not a readable params file ({error}); use --force") from error
    changed = sorted(key for key, value in params.to_dict().items() if saved.to_dict()[key] != value)
    if changed:
        raise SpectrogramError(
            f"{output_dir} holds images made with different settings ({', '.join(changed)}; feature hash "
            f"{saved.feature_hash()} vs {params.feature_hash()}); use another --output or --force to re-render all"
        )


def read_previous_rows(output_dir: Path) -> dict[str, list[dict]]:
    """Rows of earlier runs grouped by source path: the manifest's, overridden by the journal of a killed run."""
    grouped: dict[str, list[dict]] = {}
    manifest_path = output_dir / "manifest.csv"
    if manifest_path.is_file():
        table = pd.read_csv(manifest_path, dtype={"official_split": str, "source_sha256": str, "params_hash": str},
                            keep_default_na=False)
        if not set(MANIFEST_COLUMNS) - set(table.columns):  # else an older or foreign manifest: render again
            for row in table.to_dict("records"):
                grouped.setdefault(row["source_path"], []).append(row)
    grouped.update(read_journal(output_dir))
    return grouped


def read_journal(output_dir: Path) -> dict[str, list[dict]]:
    """Rows per source path from the progress journal; a line cut short by a kill is ignored."""
    journal_path = output_dir / JOURNAL_NAME
    entries: dict[str, list[dict]] = {}
    if not journal_path.is_file():
        return entries
    with open(journal_path, encoding="utf-8") as journal:
        for line in journal:
            try:
                rows = json.loads(line)
                entries[rows[0]["source_path"]] = rows
            except (ValueError, LookupError, TypeError):
                continue
    return entries


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)


def sort_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (row["class"], row["source_path"], int(row["window_index"])))


def remove_stale_images(output_dir: Path, rows: list[dict]) -> int:
    """Delete PNGs no manifest row lists (removed inputs, fewer windows) and temp files of killed runs."""
    wanted = {output_dir / row["png_path"] for row in rows}
    removed = 0
    images_dir = output_dir / IMAGES_FOLDER
    for path in images_dir.rglob("*") if images_dir.is_dir() else []:
        if path.is_file() and (path.suffix == ".tmp" or (path.suffix == ".png" and path not in wanted)):
            path.unlink()
            removed += 1
    return removed


# ---------------------------------------------------------------------------------------------- the run

def generate(input_dir: Path, output_dir: Path, params: Params, jobs: int = 1, force: bool = False,
             progress: bool = True, layout: str | None = None, strict: bool = False,
             shard: tuple[int, int] = (0, 1)) -> RunSummary:
    """Render `input_dir` into `output_dir` (see module doc). Raises SpectrogramError when nothing can be done.

    shard=(index, count) renders only the files of that shard (select_shard) and records it in shard.json.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.exists():
        raise SpectrogramError(f"input folder {input_dir} does not exist")
    try:
        sources, dataset, problems = discover_sources(input_dir, layout, strict)
    except ValueError as error:  # datasets.DatasetError: unknown layout, malformed line, --strict problem
        raise SpectrogramError(str(error)) from error
    check_params_folder(output_dir, params, force)
    if force:
        (output_dir / JOURNAL_NAME).unlink(missing_ok=True)
    if shard != (0, 1):
        sources = select_shard(sources, shard, progress)
    previous = {} if force else read_previous_rows(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    params.save(output_dir / "params.json")
    if shard != (0, 1):
        write_shard_record(output_dir, shard, input_dir)

    tasks = [(source, output_dir, params, previous.get(str(source.path), [])) for source in sources]
    outcomes = _run_with_journal(tasks, jobs, output_dir, progress)

    rows = sort_rows([row for outcome in outcomes for row in outcome.rows])
    rows, extra_columns = with_dataset_columns(rows, dataset)
    skipped = unusable_entries(input_dir)
    errors = sorted([(str(outcome.source.path), outcome.reason) for outcome in outcomes
                     if outcome.status == "failed"] + problems + skipped)
    write_csv(output_dir / "errors.csv", [dict(zip(ERROR_COLUMNS, error)) for error in errors], ERROR_COLUMNS)
    if not rows:
        raise SpectrogramError(f"none of the {len(sources)} files could be rendered; see {output_dir / 'errors.csv'}")
    write_csv(output_dir / "manifest.csv", rows, MANIFEST_COLUMNS + extra_columns)
    (output_dir / JOURNAL_NAME).unlink(missing_ok=True)  # folded into the manifest
    remove_stale_images(output_dir, rows)
    status = Counter(outcome.status for outcome in outcomes)
    return RunSummary(status["rendered"], status["reused"], status["failed"] + len(skipped), len(rows), errors,
                      len(problems))


def _run_with_journal(tasks, jobs, output_dir, progress) -> list[FileOutcome]:
    """Run all tasks, appending each rendered file's rows to the journal (flushed) the moment it is done."""
    outcomes: list[FileOutcome] = []
    with open(output_dir / JOURNAL_NAME, "a", encoding="utf-8") as journal:
        for outcome in tqdm(_outcomes(tasks, jobs), total=len(tasks), unit="file", disable=not progress,
                            desc="spectrograms"):
            outcomes.append(outcome)
            if outcome.status == "rendered":
                journal.write(json.dumps(outcome.rows) + "\n")
                journal.flush()  # in the kernel's hands: survives kill -9 of this process
    return outcomes


# ---------------------------------------------------------------------------------------------- shards

SHARD_RECORD = "shard.json"


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N; raises SpectrogramError naming the problem."""
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError as error:
        raise SpectrogramError(f"--shard takes I/N (e.g. 0/3), got '{text}'") from error
    if not 0 <= index < count:
        raise SpectrogramError(f"--shard {text}: I must lie in 0..N-1")
    return index, count


def shard_of(sha256: str, count: int) -> int:
    """The shard a file with this content hash belongs to: its hash's leading 64 bits modulo the count."""
    return int(sha256[:16], 16) % count


def select_shard(sources: list[SourceFile], shard: tuple[int, int], progress: bool = True) -> list[SourceFile]:
    """The sources whose content hash falls in `shard`, so N runs cover a folder exactly once whatever the order
    or machine. A file that cannot be read is placed by the hash of its path instead, so one shard reports it."""
    index, count = shard
    chosen = []
    for source in tqdm(sources, unit="file", desc=f"hashing for shard {index}/{count}", leave=False,
                       disable=not progress):
        try:
            digest = sha256_file(source.path)
            hashed = dataclasses.replace(source, sha256=digest)  # render_file reuses it
        except OSError:
            digest, hashed = hashlib.sha256(str(source.path).encode()).hexdigest(), source
        if shard_of(digest, count) == index:
            chosen.append(hashed)
    return chosen


def write_shard_record(output_dir: Path, shard: tuple[int, int], input_dir: Path) -> None:
    record = {"shard": shard[0], "shards": shard[1], "input": str(Path(input_dir).resolve())}
    atomic_write_text(output_dir / SHARD_RECORD, json.dumps(record, indent=2) + "\n")


def _read_shard(shard_dir: Path) -> tuple[Params, dict]:
    for name in ("params.json", SHARD_RECORD, "manifest.csv"):
        if not (shard_dir / name).is_file():
            raise SpectrogramError(f"{shard_dir} is not a finished shard: {name} is missing")
    try:
        return Params.load(shard_dir / "params.json"), json.loads((shard_dir / SHARD_RECORD).read_text())
    except ValueError as error:
        raise SpectrogramError(f"{shard_dir}: unreadable params.json or {SHARD_RECORD} ({error})") from error


def _check_shards(shard_dirs: list[Path]) -> Params:
    """The shards' common Params; refuses other parameters, another shard count or a missing/repeated shard."""
    records = [(shard_dir, *_read_shard(shard_dir)) for shard_dir in shard_dirs]
    first_dir, params, _ = records[0]
    for shard_dir, other, _ in records[1:]:
        changed = sorted(key for key, value in params.to_dict().items() if other.to_dict()[key] != value)
        if changed:
            raise SpectrogramError(f"{shard_dir} was rendered with other parameters than {first_dir} "
                                   f"({', '.join(changed)}); re-render it with the same settings")
    counts = {record["shards"] for _, _, record in records}
    if len(counts) != 1:
        raise SpectrogramError(f"the shards were cut {' and '.join(map(str, sorted(counts)))} ways; merge one set")
    count = counts.pop()
    found = sorted(record["shard"] for _, _, record in records)
    if found != list(range(count)):
        missing = sorted(set(range(count)) - set(found))
        raise SpectrogramError(f"shards of {count}: " + (f"missing {missing}" if missing else f"repeated {found}"))
    return params


def merge_shards(shard_dirs: list[Path], output_dir: Path, force: bool = False) -> RunSummary:
    """Join shard folders (manifests, pictures hard-linked or copied, error lists) into `output_dir`, the one
    folder split_data reads. Refuses shards rendered with different parameters or an incomplete set."""
    shard_dirs, output_dir = [Path(folder) for folder in shard_dirs], Path(output_dir)
    params = _check_shards(shard_dirs)
    check_params_folder(output_dir, params, force)
    rows, errors = [], []
    for shard_dir in shard_dirs:
        shard_rows = list(read_previous_rows(shard_dir).values())
        for row in (row for file_rows in shard_rows for row in file_rows):
            _link_or_copy(shard_dir / row["png_path"], output_dir / row["png_path"])
            rows.append(row)
        if (shard_dir / "errors.csv").is_file():
            errors += pd.read_csv(shard_dir / "errors.csv", keep_default_na=False).to_dict("records")
    if not rows:
        raise SpectrogramError(f"the shards in {', '.join(map(str, shard_dirs))} list no images")
    params.save(output_dir / "params.json")
    errors = sorted(errors, key=lambda error: error["file"])
    write_csv(output_dir / "errors.csv", errors, ERROR_COLUMNS)
    # The dataset's columns (group, attack, ...) in the order the shards wrote them.
    dataset_extra = [key for key in dict.fromkeys(key for row in rows for key in row) if key not in MANIFEST_COLUMNS]
    write_csv(output_dir / "manifest.csv", sort_rows(rows), MANIFEST_COLUMNS + dataset_extra)
    remove_stale_images(output_dir, rows)
    files = len({row["source_path"] for row in rows})
    return RunSummary(rendered=0, reused=files, failed=len(errors), images=len(rows),
                      errors=[(error["file"], error["reason"]) for error in errors])


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link a shard's picture into the merged folder (same file system), else copy it atomically."""
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)


def default_jobs() -> int:
    return os.cpu_count() or 1
