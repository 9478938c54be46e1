"""The shared decoder against hostile files: playlists in disguise, decompression bombs, unknown lengths, garbage."""
import io
import os
import shutil
import threading
import tracemalloc

import numpy as np
import pytest
import soundfile

from conftest import write_tone
from deepfake_detector.data import audio
from deepfake_detector.params import Params

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                  reason="ffmpeg is not installed (apt-get install ffmpeg)")
SERVICE_PARAMS = Params(max_duration_s=600.0)


def flac_declaring(sample_rate: int, channels: int, seconds: float, declared_frames: int) -> bytes:
    """A real FLAC tone whose STREAMINFO is patched to declare `declared_frames` (0 = unknown, which is legal)."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    tone = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * channels, axis=1).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, tone, sample_rate, format="FLAC", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    # STREAMINFO starts at byte 8; its total-samples field is the low 36 bits of the 64-bit word at byte 18.
    word = int.from_bytes(data[18:26], "big")
    data[18:26] = ((word & ~((1 << 36) - 1)) | declared_frames).to_bytes(8, "big")
    return bytes(data)


class FifoWatch:
    """A named pipe that records whether anybody opened it for reading (a blocked writer wakes up when they do)."""

    def __init__(self, path):
        self.path, self.opened, self._finished = path, threading.Event(), threading.Event()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._wait_for_reader, daemon=True)
        self._thread.start()

    def _wait_for_reader(self):
        while not self._finished.is_set():  # serve every open (an empty read), so a reader never hangs
            with open(self.path, "wb"):
                if not self._finished.is_set():
                    self.opened.set()

    def finish(self) -> bool:
        """Stop watching (by opening the reading end ourselves); True when someone else opened it first."""
        self._finished.set()
        reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread.join(timeout=5)
        os.close(reader)
        return self.opened.is_set()


@needs_ffmpeg
def test_a_playlist_disguised_as_mp3_never_opens_the_files_it_names(tmp_path):
    watched = FifoWatch(tmp_path / "server_side_media.wav")
    # An ID3 tag (sniffed as MP3, refused by libsndfile, so it reaches ffmpeg) followed by an HLS playlist.
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n" + f"#EXTINF:4,\n{watched.path}\n" * 3 + "#EXT-X-ENDLIST\n"
    upload = tmp_path / "upload.mp3"
    upload.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + playlist.encode())
    with pytest.raises(audio.AudioError, match="not a readable audio file"):
        audio.load_audio(upload, SERVICE_PARAMS)
    assert not watched.finish(), "the decoder opened a file named inside the upload"


def test_a_flac_declaring_gigabytes_of_samples_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.flac"
    # 1 s of real 192 kHz x 8-channel audio whose header declares 600 s: 921.6 M samples, 3.7 GB as float32.
    bomb.write_bytes(flac_declaring(192_000, 8, 1.0, 600 * 192_000))
    with pytest.raises(audio.AudioTooLarge, match="decoded size too large: 192000 Hz x 8 channels x 600 s"):
        audio.load_audio(bomb, SERVICE_PARAMS)
    # The same rate and channels for a short declared length are fine: the budget scales with the duration.
    short = tmp_path / "short.flac"
    short.write_bytes(flac_declaring(192_000, 8, 1.0, 192_000))
    assert audio.load_audio(short, SERVICE_PARAMS)[1].duration_s == pytest.approx(1.0)


def test_decoding_memory_is_bounded_by_the_mono_output_not_the_input(tmp_path):
    seconds, rate, channels = 10.0, 48_000, 8
    clip = write_tone(tmp_path / "wide.wav", seconds, sample_rate=rate, channels=channels, noise=0.01)
    raw_bytes = seconds * rate * channels * 4  # 15.4 MB if decoded whole as float32
    mono_bytes = seconds * Params().sample_rate * 4  # 0.9 MB
    tracemalloc.start()
    try:
        waveform, info = audio.load_audio(clip, Params())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.channels == channels and len(waveform) == int(seconds * Params().sample_rate)
    assert peak < mono_bytes * 2 + 4 * 2**20 < raw_bytes / 2, f"peak {peak / 2**20:.1f} MB"


def test_block_decoding_matches_whole_file_decoding(tmp_path):
    clip = write_tone(tmp_path / "stereo.flac", 7.0, sample_rate=44100, channels=2, noise=0.1)
    waveform, _ = audio.load_audio(clip, Params())
    samples, rate = soundfile.read(str(clip), dtype="float32", always_2d=True)
    np.testing.assert_allclose(waveform, audio.to_mono_resampled(samples, rate, Params().sample_rate), atol=1e-6)


@needs_ffmpeg
def test_a_flac_of_unknown_length_is_decoded_up_to_the_duration_cap(tmp_path):
    unknown = tmp_path / "unknown.flac"
    unknown.write_bytes(flac_declaring(16_000, 1, 2.0, 0))
    known = tmp_path / "known.flac"
    known.write_bytes(flac_declaring(16_000, 1, 2.0, 32_000))
    waveform, info = audio.load_audio(unknown, SERVICE_PARAMS)
    assert info.duration_s == pytest.approx(2.0)
    np.testing.assert_allclose(waveform, audio.load_audio(known, SERVICE_PARAMS)[0], atol=1e-4)
    with pytest.raises(audio.AudioTooLarge, match="too long"):
        audio.load_audio(unknown, Params(max_duration_s=1.0))


def test_garbage_gets_a_reason_that_does_not_blame_the_file_system(tmp_path):
    garbage = tmp_path / "notes.wav"
    garbage.write_bytes(b"certainly not audio " * 100)
    with pytest.raises(audio.AudioError) as refusal:
        audio.load_audio(garbage, Params())
    assert "not a readable audio file" in str(refusal.value)
    assert "pipe" not in str(refusal.value) and "does not exist" not in str(refusal.value)


def test_special_files_are_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)  # opening it would block forever
    with pytest.raises(audio.AudioError, match="not a regular file: a named pipe"):
        audio.load_audio(fifo, Params())
    dangling = tmp_path / "gone.wav"
    dangling.symlink_to(tmp_path / "missing.wav")
    with pytest.raises(audio.AudioError, match="dangling symbolic link"):
        audio.load_audio(dangling, Params())
