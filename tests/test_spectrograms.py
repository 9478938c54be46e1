"""Stage 1: spectrogram rendering, input layouts, bad input handling, resumable reruns and the CLI."""
import os
import subprocess
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile

from conftest import PROJECT_ROOT, write_tone
from deepfake_detector.data import features
from deepfake_detector.io_utils import child_pids, pid_alive
from deepfake_detector.params import Params
from deepfake_detector.data.spectrograms import SpectrogramError, discover_sources, generate, read_journal

PARAMS = Params()
SCRIPT = PROJECT_ROOT / "scripts" / "generate_spectrograms.py"


def run(input_dir: Path, output_dir: Path, params: Params = PARAMS, **options):
    return generate(input_dir, output_dir, params, progress=False, **options)


def read_manifest(output_dir: Path) -> pd.DataFrame:
    return pd.read_csv(output_dir / "manifest.csv", keep_default_na=False)


def lut_indices(image: np.ndarray) -> np.ndarray:
    """Map every magma pixel back to its 0..255 LUT index (-1 when the colour is not in the LUT)."""
    lut = features.magma_lut().astype(np.int32)
    distances = np.abs(image[..., None, :].astype(np.int32) - lut[None, None]).sum(axis=-1)  # (H, W, 256)
    indices = distances.argmin(axis=-1)
    return np.where(distances.min(axis=-1) == 0, indices, -1)


def test_pure_tone_lights_expected_mel_row(tmp_path):
    frequency = 2000.0
    write_tone(tmp_path / "in" / "real" / "tone.wav", 4.0, frequency, sample_rate=PARAMS.sample_rate)
    run(tmp_path / "in", tmp_path / "out")
    image = features.load_png(tmp_path / "out" / read_manifest(tmp_path / "out")["png_path"][0])

    # Band centres of librosa's mel filterbank: mel_frequencies(n_mels + 2) without the two edges.
    centres = librosa.mel_frequencies(PARAMS.n_mels + 2, fmin=PARAMS.fmin, fmax=PARAMS.fmax)[1:-1]
    expected_band = int(np.argmin(np.abs(centres - frequency)))
    brightest_row = int(lut_indices(image).mean(axis=1).argmax())
    # Low frequencies sit at the bottom of the PNG, so band b is row n_mels - 1 - b.
    assert brightest_row == PARAMS.n_mels - 1 - expected_band


def test_png_colours_come_from_magma_and_shapes_are_fixed(tmp_path):
    write_tone(tmp_path / "in" / "fake" / "short.wav", 1.3, 300.0, noise=0.05)
    write_tone(tmp_path / "in" / "fake" / "long.flac", 9.0, 900.0, sample_rate=44100, channels=2, noise=0.05)
    run(tmp_path / "in", tmp_path / "out")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["source_path"].nunique() == 2
    for png_path in manifest["png_path"]:
        image = features.load_png(tmp_path / "out" / png_path)
        assert image.shape == (PARAMS.n_mels, PARAMS.frames_per_window, 3)
        assert (lut_indices(image) >= 0).all()


@pytest.mark.parametrize("hop, expected_starts", [(4.0, [0.0, 4.0, 6.0]), (2.0, [0.0, 2.0, 4.0, 6.0])])
def test_ten_second_file_gives_expected_windows(tmp_path, hop, expected_starts):
    write_tone(tmp_path / "in" / "real" / "ten.wav", 10.0, noise=0.01)
    run(tmp_path / "in", tmp_path / "out", PARAMS.replace(hop_s=hop))
    manifest = read_manifest(tmp_path / "out")
    assert manifest["window_index"].tolist() == list(range(len(expected_starts)))
    assert manifest["start_s"].tolist() == pytest.approx(expected_starts)
    assert manifest["end_s"].tolist() == pytest.approx([start + 4.0 for start in expected_starts])
    assert len(list((tmp_path / "out" / "images" / "real").glob("*.png"))) == len(expected_starts)


def write_bad_inputs(folder: Path) -> dict[str, str]:
    """One file per kind of bad input; returns name -> a word its error reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    good = write_tone(folder / "whole.wav", 1.0).read_bytes()
    (folder / "truncated.wav").write_bytes(good[:30])  # cut inside the 44-byte header
    (folder / "text.wav").write_text("this is not audio\n" * 50)
    soundfile.write(str(folder / "silent.wav"), np.zeros(16000, dtype=np.float32), 16000)
    write_tone(folder / "short.wav", 0.2)
    (folder / "whole.wav").unlink()
    return {"empty.wav": "empty", "truncated.wav": "readable", "text.wav": "readable",
            "silent.wav": "silent", "short.wav": "short"}


def test_bad_inputs_are_listed_and_skipped(tmp_path):
    expected_reasons = write_bad_inputs(tmp_path / "in" / "fake")
    write_tone(tmp_path / "in" / "real" / "good.wav", 2.0)
    write_tone(tmp_path / "in" / "fake" / "good_fake.ogg", 2.0, 700.0)
    summary = run(tmp_path / "in", tmp_path / "out")

    errors = pd.read_csv(tmp_path / "out" / "errors.csv")
    reasons = {Path(file).name: reason for file, reason in zip(errors["file"], errors["reason"])}
    assert set(reasons) == set(expected_reasons)
    for name, word in expected_reasons.items():
        assert word in reasons[name], (name, reasons[name])
    assert (summary.rendered, summary.failed) == (2, 5)
    assert sorted(Path(path).name for path in read_manifest(tmp_path / "out")["source_path"]) == [
        "good.wav", "good_fake.ogg"]


def test_rerun_renders_nothing_and_repairs_missing_images(tmp_path):
    write_tone(tmp_path / "in" / "real" / "a.wav", 6.0)
    write_tone(tmp_path / "in" / "fake" / "b.wav", 2.0, 900.0)
    output = tmp_path / "out"
    assert run(output.parent / "in", output).rendered == 2
    pngs = sorted(output.glob("images/*/*.png"))
    mtimes = {path: path.stat().st_mtime_ns for path in pngs}

    again = run(tmp_path / "in", output)
    assert (again.rendered, again.reused) == (0, 2)
    assert {path: path.stat().st_mtime_ns for path in pngs} == mtimes

    # A deleted PNG is re-created, and a temp file a killed run left behind is neither trusted nor kept.
    deleted = pngs[0]
    deleted.unlink()
    leftover = deleted.parent / f".{deleted.name}.abc123.tmp"
    leftover.write_bytes(b"partial")
    repaired = run(tmp_path / "in", output)
    assert (repaired.rendered, repaired.reused) == (1, 1)
    assert deleted.is_file() and not leftover.exists()


def test_changed_source_is_rerendered_and_removed_source_cleaned(tmp_path):
    write_tone(tmp_path / "in" / "real" / "a.wav", 2.0)
    gone = write_tone(tmp_path / "in" / "fake" / "gone.wav", 2.0, 900.0)
    run(tmp_path / "in", tmp_path / "out")
    write_tone(tmp_path / "in" / "real" / "a.wav", 2.0, 1200.0)  # new content under the same name
    gone.unlink()
    write_tone(tmp_path / "in" / "fake" / "new.wav", 2.0, 500.0)
    summary = run(tmp_path / "in", tmp_path / "out")
    assert (summary.rendered, summary.reused) == (2, 0)
    listed = set(read_manifest(tmp_path / "out")["png_path"])
    on_disk = {path.relative_to(tmp_path / "out").as_posix() for path in (tmp_path / "out").glob("images/*/*")}
    assert listed == on_disk


def test_other_feature_settings_are_refused_unless_forced(tmp_path):
    write_tone(tmp_path / "in" / "real" / "a.wav", 5.0)
    run(tmp_path / "in", tmp_path / "out")
    with pytest.raises(SpectrogramError, match="window_s"):
        run(tmp_path / "in", tmp_path / "out", PARAMS.replace(window_s=2.0, hop_s=2.0))
    summary = run(tmp_path / "in", tmp_path / "out", PARAMS.replace(window_s=2.0, hop_s=2.0), force=True)
    assert summary.rendered == 1 and summary.images == 3
    assert Params.load(tmp_path / "out" / "params.json").window_s == 2.0


def test_both_layouts_record_the_official_split(tmp_path):
    write_tone(tmp_path / "for" / "training" / "real" / "a.wav", 1.0)
    write_tone(tmp_path / "for" / "testing" / "fake" / "b.wav", 1.0)
    write_tone(tmp_path / "cls" / "bonafide" / "validation" / "c.wav", 1.0)
    write_tone(tmp_path / "cls" / "spoof" / "speaker1" / "d.wav", 1.0)
    (tmp_path / "cls" / "groups.csv").write_text("path,group\n")
    (tmp_path / "cls" / "real.wav").write_bytes(b"loose files at the top are not class members")

    found = {source.path.name: (source.class_name, source.official_split)
             for folder in ("for", "cls") for source in discover_sources(tmp_path / folder)[0]}
    assert found == {"a.wav": ("real", "train"), "b.wav": ("fake", "test"),
                     "c.wav": ("real", "val"), "d.wav": ("fake", "")}


def test_unknown_class_folder_is_named_in_the_error(tmp_path):
    write_tone(tmp_path / "in" / "maybe" / "a.wav", 1.0)
    with pytest.raises(SpectrogramError, match="'maybe'"):
        run(tmp_path / "in", tmp_path / "out")


def test_parallel_run_matches_in_process_run(tmp_path):
    for index in range(3):
        write_tone(tmp_path / "in" / "real" / f"r{index}.wav", 1.5 + index, 300.0 * (index + 1), noise=0.02)
    run(tmp_path / "in", tmp_path / "one", jobs=1)
    run(tmp_path / "in", tmp_path / "two", jobs=2)
    assert read_manifest(tmp_path / "one").equals(read_manifest(tmp_path / "two"))
    for png_path in read_manifest(tmp_path / "one")["png_path"]:
        assert (tmp_path / "one" / png_path).read_bytes() == (tmp_path / "two" / png_path).read_bytes()


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, check=False)


def test_cli_help_and_missing_input(tmp_path):
    assert run_cli("--help").returncode == 0
    missing = run_cli("--input", tmp_path / "nowhere", "--output", tmp_path / "out")
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and missing.stderr.startswith("error:")


def test_cli_fails_when_nothing_renders(tmp_path):
    (tmp_path / "in" / "real").mkdir(parents=True)
    (tmp_path / "in" / "real" / "empty.wav").write_bytes(b"")
    result = run_cli("--input", tmp_path / "in", "--output", tmp_path / "out", "--jobs", 1)
    # The progress bar also writes to stderr; the failure itself is one line, not a traceback.
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: none of the 1 files")
    assert "empty" in (tmp_path / "out" / "errors.csv").read_text()


# ---------------------------------------------------------------------------------------------- linear front end

def test_cli_scale_linear_puts_a_sine_in_its_linear_row(tmp_path):
    frequency = 3488.0  # the centre of linear band 40 (86.13 Hz wide bands over 0-11,025 Hz)
    write_tone(tmp_path / "in" / "real" / "tone.wav", 4.0, frequency, sample_rate=PARAMS.sample_rate)
    result = run_cli("--input", tmp_path / "in", "--output", tmp_path / "out", "--jobs", 1, "--scale", "linear")
    assert result.returncode == 0, result.stderr[-2000:]
    saved = Params.load(tmp_path / "out" / "params.json")
    assert saved.scale == "linear"
    image = features.load_png(tmp_path / "out" / read_manifest(tmp_path / "out")["png_path"][0])
    assert image.shape == PARAMS.png_shape  # same picture size as mel
    assert (lut_indices(image) >= 0).all()  # and the same colour map
    band = int(frequency // ((PARAMS.fmax - PARAMS.fmin) / PARAMS.n_mels))
    assert band == 40
    assert int(lut_indices(image).mean(axis=1).argmax()) == PARAMS.n_mels - 1 - band
    # On the mel scale the same tone lies in another row: the option really changes the axis.
    mel = features.waveform_to_images(librosa.tone(frequency, sr=PARAMS.sample_rate, duration=4.0), PARAMS)[0][0]
    assert int(lut_indices(mel).mean(axis=1).argmax()) != PARAMS.n_mels - 1 - band


def test_linear_bands_average_the_fft_bins_and_scale_joins_the_hash_only_when_not_mel():
    linear = Params(scale="linear")
    basis = features.band_basis(linear)
    assert basis.shape == (128, 1 + linear.n_fft // 2)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0, rtol=1e-6)  # each row is a mean of its bins
    assert ((basis > 0).sum(axis=0) == 1).all()  # every bin lies in exactly one band
    assert "scale" not in Params().feature_dict()  # mel folders rendered before the option keep their hash
    assert linear.feature_hash() != Params().feature_hash()
    with pytest.raises(ValueError, match="unknown frequency scale 'bark'"):
        Params(scale="bark")


# ---- hostile folders and kill -9 (issue 17) ------------------------------------------------------------------------

def test_cli_fmax_spreads_the_rows_over_the_lower_band_and_refuses_a_band_past_nyquist(tmp_path):
    frequency = 64.5 * 5500 / 128  # the centre of linear band 64 of 0-5,500 Hz; band 32 of the default 0-11,025
    write_tone(tmp_path / "in" / "real" / "tone.wav", 4.0, frequency, sample_rate=PARAMS.sample_rate)
    result = run_cli("--input", tmp_path / "in", "--output", tmp_path / "out", "--jobs", 1, "--scale", "linear",
                     "--fmax", 5500)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = Params.load(tmp_path / "out" / "params.json")
    assert saved.fmax == 5500.0 and saved.feature_hash() != Params(scale="linear").feature_hash()
    image = features.load_png(tmp_path / "out" / read_manifest(tmp_path / "out")["png_path"][0])
    assert image.shape == PARAMS.png_shape
    assert int(lut_indices(image).mean(axis=1).argmax()) == PARAMS.n_mels - 1 - 64  # band 64 of 128, not 32
    refused = run_cli("--input", tmp_path / "in", "--output", tmp_path / "bad", "--fmax", 12000)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "must lie within 0-11025 Hz" in refused.stderr.strip().splitlines()[-1]


def test_fifos_and_dangling_links_are_listed_in_errors_and_never_opened(tmp_path):
    write_tone(tmp_path / "in" / "real" / "good.wav", 1.0)
    write_tone(tmp_path / "in" / "fake" / "good.wav", 1.0, 700.0)
    os.mkfifo(tmp_path / "in" / "real" / "stream.wav")  # opening it would block the run forever
    (tmp_path / "in" / "fake" / "gone.flac").symlink_to(tmp_path / "missing.flac")
    summary = run(tmp_path / "in", tmp_path / "out")
    errors = pd.read_csv(tmp_path / "out" / "errors.csv")
    reasons = {Path(file).name: reason for file, reason in zip(errors["file"], errors["reason"])}
    assert reasons == {"stream.wav": "not a regular file: a named pipe (FIFO)",
                       "gone.flac": "file not found (dangling symbolic link)"}
    assert (summary.rendered, summary.failed) == (2, 2)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_kill_9_leaves_no_workers_and_a_rerun_keeps_the_finished_files(tmp_path):
    # Enough audio that the run is still rendering when it is killed, even on an idle machine with the fast path.
    for index in range(48):
        write_tone(tmp_path / "in" / "real" / f"clip{index:02d}.wav", 12.0, 200.0 + 10 * index, noise=0.02)
    output = tmp_path / "out"
    renderer = subprocess.Popen([sys.executable, str(SCRIPT), "--input", str(tmp_path / "in"), "--output",
                                 str(output), "--jobs", "2"], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len({path.name.split("__")[0] for path in output.glob("images/real/*.png")}) < 3:
            assert renderer.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
            time.sleep(0.05)
        time.sleep(0.1)
        workers = child_pids(renderer.pid)
        assert len(workers) == 2
    finally:
        renderer.kill()  # SIGKILL: no cleanup code runs in the parent
        renderer.wait()
    deadline = time.monotonic() + 10
    while any(map(pid_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if pid_alive(pid)] == [], "pool workers outlived the killed run"

    journaled = read_journal(output)
    assert len(journaled) >= 2, "finished files were not saved as they finished"
    summary = run(tmp_path / "in", output)
    assert summary.reused == len(journaled) and summary.rendered == 48 - len(journaled)
    assert not (output / "progress.jsonl").exists() and len(read_manifest(output)) == 48 * 3  # 12 s = three 4 s windows


def test_a_process_running_tensorflow_renders_with_spawned_workers(tmp_path):
    # Forking a process whose TensorFlow threads run copies their locks mid-use; the generalisation benchmark's
    # render pool, forked after training, died with BrokenProcessPool. Such a process must spawn its workers.
    src = str(Path(__file__).resolve().parents[1] / "src")
    for index in range(4):
        write_tone(tmp_path / "audio" / ("real", "fake")[index % 2] / f"clip{index}.wav", 1.5, 200.0 + 50 * index)
    script = f"""
import sys
sys.path.insert(0, {src!r})
from deepfake_detector.io_utils import pool_context
assert pool_context().get_start_method() == "fork"  # no TensorFlow yet: the cheap start
import tensorflow as tf
tf.reduce_sum(tf.ones((256, 256)) @ tf.ones((256, 256))).numpy()  # its thread pools are now running
assert pool_context().get_start_method() == "spawn"
from deepfake_detector.data.spectrograms import generate
from deepfake_detector.params import Params
print("rendered", generate({str(tmp_path / "audio")!r}, {str(tmp_path / "out")!r}, Params(), jobs=2,
                           progress=False).rendered)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rendered 4" in done.stdout
