"""bench/encoder_probe.py: the torch-free checkpoint reader, the Keras port of the GE2E LSTM, and a smoke run."""
import collections
import importlib.util
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("encoder_probe", ROOT / "bench" / "encoder_probe.py")
probe = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(probe)


class _StorageRef:
    def __init__(self, key, data):
        self.key, self.data = key, data


def write_legacy_checkpoint(path: Path, obj, monkeypatch) -> None:
    """Writes `obj` (dicts whose leaves may be (base array, offset, shape, strides in elements) tuples, one float32
    storage per base array) the way torch.save did before PyTorch 1.6, with stand-in torch modules: the magic
    number, protocol version and system info pickles, the object graph, the sorted storage keys, then each
    storage as an int64 element count and its raw bytes."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    storage_class = type("FloatStorage", (), {"__module__": "torch"})
    torch.FloatStorage = storage_class

    def rebuild(*args):
        raise AssertionError("never called while writing")

    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = rebuild
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    storages = {}

    class Tensor:
        def __init__(self, base, offset, shape, strides):
            key = str(len(storages))
            storages[key] = _StorageRef(key, np.ascontiguousarray(base, np.float32).ravel())
            self.args = (storages[key], offset, shape, strides)

        def __reduce__(self):
            storage, offset, shape, strides = self.args
            return rebuild, (storage, offset, tuple(shape), tuple(strides), False, collections.OrderedDict())

    def convert(value):
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        return Tensor(*value) if isinstance(value, tuple) else value

    graph = convert(obj)
    with open(path, "wb") as stream:
        for header in (probe.LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, stream, protocol=2)
        pickler = pickle.Pickler(stream, protocol=2)
        pickler.persistent_id = lambda item: (("storage", storage_class, item.key, "cpu", len(item.data))
                                              if isinstance(item, _StorageRef) else None)
        pickler.dump(graph)
        pickle.dump(sorted(storages), stream, protocol=2)
        for key in sorted(storages):
            stream.write(struct.pack("<q", len(storages[key].data)) + storages[key].data.tobytes())


def random_state(seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays shaped like Resemblyzer's GE2E encoder (3-layer LSTM 40 -> 256, linear 256 -> 256)."""
    rng = np.random.default_rng(seed)
    state = {}
    for layer, inputs in enumerate((probe.N_MELS, probe.HIDDEN, probe.HIDDEN)):
        state[f"lstm.weight_ih_l{layer}"] = rng.normal(0, 0.1, (4 * probe.HIDDEN, inputs)).astype(np.float32)
        state[f"lstm.weight_hh_l{layer}"] = rng.normal(0, 0.1, (4 * probe.HIDDEN, probe.HIDDEN)).astype(np.float32)
        state[f"lstm.bias_ih_l{layer}"] = rng.normal(0, 0.1, 4 * probe.HIDDEN).astype(np.float32)
        state[f"lstm.bias_hh_l{layer}"] = rng.normal(0, 0.1, 4 * probe.HIDDEN).astype(np.float32)
    state["linear.weight"] = rng.normal(0, 0.1, (probe.HIDDEN, probe.HIDDEN)).astype(np.float32)
    state["linear.bias"] = rng.normal(0, 0.1, probe.HIDDEN).astype(np.float32)
    return state


def torch_lstm_layer(x: np.ndarray, w_ih, w_hh, b_ih, b_hh) -> np.ndarray:
    """PyTorch's LSTM equations written out (gates i, f, g, o in that order), as an independent reference."""
    def sigmoid(value):
        return 1.0 / (1.0 + np.exp(-value))

    hidden = np.zeros((x.shape[0], w_hh.shape[1]), np.float64)
    cell = np.zeros_like(hidden)
    outputs = []
    for step in range(x.shape[1]):
        gates = x[:, step] @ w_ih.T + b_ih + hidden @ w_hh.T + b_hh
        i, f, g, o = np.split(gates, 4, axis=1)
        cell = sigmoid(f) * cell + sigmoid(i) * np.tanh(g)
        hidden = sigmoid(o) * np.tanh(cell)
        outputs.append(hidden)
    return np.stack(outputs, axis=1)


def test_legacy_checkpoint_reader_round_trips_tensors(tmp_path, monkeypatch):
    base = np.arange(24, dtype=np.float32)
    saved = {"step": 7, "model_state": collections.OrderedDict(
        plain=(base.reshape(4, 6), 0, (4, 6), (6, 1)),
        transposed=(base.reshape(4, 6), 0, (6, 4), (1, 6)),   # a .t() view: strides, not a copy
        offset=(base, 5, (3,), (2,)))}                          # a strided slice starting at element 5
    path = tmp_path / "legacy.pt"
    write_legacy_checkpoint(path, saved, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need torch
    monkeypatch.delitem(sys.modules, "torch._utils")
    loaded = probe.read_legacy_checkpoint(path)
    assert loaded["step"] == 7
    state = loaded["model_state"]
    np.testing.assert_array_equal(state["plain"], base.reshape(4, 6))
    np.testing.assert_array_equal(state["transposed"], base.reshape(4, 6).T)
    np.testing.assert_array_equal(state["offset"], base[5:11:2])


def test_reader_refuses_other_files_in_one_line(tmp_path):
    path = tmp_path / "not_a_checkpoint.pt"
    with open(path, "wb") as stream:
        pickle.dump({"hello": 1}, stream)
    with pytest.raises(probe.ProbeError, match="not a legacy PyTorch checkpoint"):
        probe.read_legacy_checkpoint(path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(probe.ProbeError, match="cannot read"):
        probe.read_legacy_checkpoint(path)


def test_keras_port_matches_pytorch_lstm_equations():
    state = random_state()
    model = probe.build_encoder(state)
    x = np.random.default_rng(1).random((2, probe.PARTIAL_FRAMES, probe.N_MELS)).astype(np.float32)
    outputs = model.predict(x, verbose=0)
    reference = x.astype(np.float64)
    for layer in range(3):
        reference = torch_lstm_layer(reference, *(state[f"lstm.{name}_l{layer}"].astype(np.float64)
                                                  for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        np.testing.assert_allclose(outputs[layer], reference, atol=1e-4)
    embedding = probe.speaker_embedding(outputs[-1], state)
    assert embedding.shape == (probe.HIDDEN,)
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)
    assert (embedding >= 0).all()  # ReLU before the norm


def test_partials_cover_the_clip_at_the_encoder_rate():
    mel = np.zeros((500, probe.N_MELS), np.float32)  # 5 s of 10 ms frames
    pieces = probe.partials(mel)
    assert pieces.shape[1:] == (probe.PARTIAL_FRAMES, probe.N_MELS)
    step = int(round(probe.SAMPLE_RATE / probe.PARTIALS_PER_S / probe.HOP))
    assert len(pieces) == (500 - probe.PARTIAL_FRAMES) // step + 1
    short = probe.encoder_mel(np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32))  # 0.5 s
    assert len(short) == probe.PARTIAL_FRAMES and len(probe.partials(short)) == 1


def test_smoke_run_on_a_tiny_corpus(tmp_path, monkeypatch):
    from deepfake_detector.report import benchmark

    corpus = benchmark.make_tiny_corpus(tmp_path / "tiny", clips_per_family=4, seed=0)
    weights = tmp_path / "ge2e.pt"
    state = {key: (value, 0, value.shape, tuple(stride // value.itemsize for stride in value.strides))
             for key, value in random_state().items()}
    write_legacy_checkpoint(weights, {"model_state": state}, monkeypatch)
    out = tmp_path / "out"
    code = probe.main(["--corpus", f"tiny={corpus}", "--work", str(tmp_path / "work"), "--out", str(out),
                       "--shared-data", str(tmp_path / "absent"), "--seeds", "42", "--weights", str(weights)])
    assert code == 0
    report = (out / "encoder_probe.md").read_text()
    for kind in probe.GE2E_KINDS:
        assert f"| tiny | {kind} |" in report
    import json
    results = json.loads((out / "encoder_probe.json").read_text())
    run = results["tiny"]["ge2e_h2"][0]
    assert 0.0 <= run["in-domain"] <= 100.0 and run["families"]  # held-out families were run


def test_both_heads_rank_a_separable_problem_and_keep_the_best_setting():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    features = rng.normal(0, 1, (120, 8)) + labels[:, None] * 1.5  # fakes shifted in every dimension
    for head in probe.HEADS:
        fitted = probe.fit_probe(features[::2], labels[::2], features[1::2], labels[1::2], head, seed=0)
        assert fitted.setting in probe.HEADS[head]
        assert fitted.val_auc > 0.9
        assert probe.eer_percent(labels[1::2], fitted.scores(features[1::2])) < 15


def test_missing_weights_fail_in_one_line(tmp_path, capsys):
    code = probe.main(["--corpus", f"tiny={tmp_path}", "--weights", str(tmp_path / "absent.pt"),
                       "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert code == 1
    assert capsys.readouterr().err.strip().startswith("error: no GE2E weights")


class _StandInSession:
    """Records what onnxruntime would be given and answers with arrays of the real models' output shapes."""

    def __init__(self, respond):
        self.respond, self.seen = respond, []

    def run(self, _outputs, feeds):
        (value,) = feeds.values()
        self.seen.append(value)
        return [self.respond(value)]


def test_speech_embedding_windows_and_levels_like_openwakeword():
    frames_per_sample = 1 / probe.HOP  # the mel model gives one 32-band frame per 10 ms
    mel_model = _StandInSession(lambda x: np.full((int(x.shape[1] * frames_per_sample), 1, 1, 32), 50.0,
                                                  np.float32).reshape(-1, 1, 1, 32))
    embed_model = _StandInSession(lambda w: w.mean(axis=(1, 2, 3))[:, None, None, None] *
                                  np.ones((1, 1, 1, probe.OWW_DIM), np.float32))
    encoder = probe.SpeechEmbedding(mel_model, embed_model, "test")
    rng = np.random.default_rng(0)
    quiet, loud = rng.normal(0, 0.001, 48000).astype(np.float32), None
    loud = quiet * 300
    features = encoder.features(quiet)
    assert set(features) == set(probe.OWW_KINDS)
    assert features["oww_mel"].shape == (64,) and features["oww_emb"].shape == (2 * probe.OWW_DIM,)
    np.testing.assert_allclose(features["oww_mel"][:32], 50.0 / 10 + 2)  # openWakeWord's x / 10 + 2
    # 3 s -> 300 frames -> windows of 76 every 8 frames, the short tail dropped
    assert embed_model.seen[-1].shape == ((300 - probe.OWW_WINDOW) // probe.OWW_STEP + 1, probe.OWW_WINDOW, 32, 1)
    # both clips reach the mel model at the same -30 dBFS on the 16-bit scale
    encoder.features(loud)
    first, second = mel_model.seen[-2], mel_model.seen[-1]
    np.testing.assert_allclose(np.sqrt(np.mean(first ** 2)), 32767 * 10 ** (probe.TARGET_DBFS / 20), rtol=1e-3)
    np.testing.assert_allclose(first, second, rtol=1e-3, atol=1e-2)
    # a 0.3 s clip is padded to one second: one full window
    encoder.features(quiet[:4800])
    assert mel_model.seen[-1].shape == (1, probe.SAMPLE_RATE) and embed_model.seen[-1].shape[0] >= 1


def test_missing_openwakeword_models_fail_in_one_line(tmp_path, capsys):
    code = probe.main(["--corpus", f"tiny={tmp_path}", "--encoder", "oww", "--weights", str(tmp_path),
                       "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert code == 1
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: no openWakeWord models") and "\n" not in message
