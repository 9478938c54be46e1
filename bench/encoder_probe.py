"""Encoder probe: does a pretrained speech encoder's representation transfer better than our pictures?

Two pretrained speech encoders ship inside registry packages (`--encoder`):
- `ge2e`: Resemblyzer's GE2E speaker encoder (PyPI `resemblyzer` 0.1.4, Apache-2.0: `resemblyzer/pretrained.pt`, a
  3-layer LSTM over 40-band mel frames trained for speaker verification on LibriSpeech other-500 and VoxCeleb 1
  and 2). Its weights are read without PyTorch and the LSTM runs in Keras.
- `oww`: Google's speech_embedding as shipped by openWakeWord (PyPI `openwakeword` 0.4.0, Apache-2.0:
  `resources/models/melspectrogram.onnx` and `embedding_model.onnx`, a conv net trained for keyword spotting on
  a large speech corpus that maps 0.775 s of 32-band mel to a 96-d vector every 80 ms). It runs in onnxruntime.
A probe is trained on standardised features (`--head linear`: logistic regression; `--head mlp`: a perceptron with
one hidden layer of 64 units; regularisation chosen by validation AUC) on one file-level vector per clip:

  logmel40   (ge2e) mean and std over time of the encoder's own 40-band log mel (the control: no pretraining)
  ge2e_emb   (ge2e) the speaker embedding (256, unit norm, mean of 1.6 s partials)
  ge2e_h1..3 (ge2e) mean and std over time of each LSTM layer's outputs (512 each)
  oww_mel    (oww) mean and std over time of its 32-band mel input (the control: no pretraining)
  oww_emb    (oww) mean and std over time of the 96-d embeddings (192)

Protocol (the same split tables as bench/generalisation.py, so rows compare): per seed, in-domain EER on the test
split, held-out-family and held-out-real-source EER (report.benchmark.loso_table / source_fold_table), and the
evaluation-only sets (crossdomain, tts-mixed, for-norm-mini testing), which choose nothing. `--eval-lowpass`
band-limits the evaluation sets to the training build's band (e.g. 5500 Hz for the narrow default build).

    pip install --no-deps resemblyzer==0.1.4 openwakeword==0.4.0   # 16 + 9 MB; only their model files are read
    python bench/encoder_probe.py --corpus v2=data_v2 --work benchmarks/work --eval-lowpass 5500
    python bench/encoder_probe.py --encoder oww --corpus v2=data_v2 --work benchmarks/work --eval-lowpass 5500
"""
import argparse
import collections
import dataclasses
import hashlib
import importlib.util
import json
import os
import pickle
import struct
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from deepfake_detector.data import audio  # noqa: E402
from deepfake_detector.io_utils import atomic_path, atomic_write_text  # noqa: E402
from deepfake_detector.params import Params  # noqa: E402
from deepfake_detector.report import benchmark, metrics  # noqa: E402

# The encoder's own front end (resemblyzer/hparams.py): 16 kHz, 25 ms / 10 ms frames, 40 mel bands (power, no
# log), 1.6 s partials at 1.3 per second, input normalised to -30 dBFS.
SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40
PARTIAL_FRAMES = 160
PARTIALS_PER_S = 1.3
TARGET_DBFS = -30.0
HIDDEN = 256
GE2E_KINDS = ("logmel40", "ge2e_emb", "ge2e_h1", "ge2e_h2", "ge2e_h3")
# openWakeWord's front end (openwakeword/utils.py): 16-bit-scaled samples in, 32-band mel frames every 10 ms out,
# rescaled by x / 10 + 2; the embedding net sees 76-frame windows every 8 frames.
OWW_WINDOW, OWW_STEP, OWW_DIM = 76, 8, 96
OWW_KINDS = ("oww_mel", "oww_emb")
# The probe's head, and the regularisation grid searched on validation AUC for each: logistic regression's C, or
# the L2 penalty alpha of a one-hidden-layer (64 units) perceptron.
HEADS = {"linear": (0.001, 0.01, 0.1, 1.0), "mlp": (1.0, 0.1, 0.01, 0.001)}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's format before PyTorch 1.6
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


class ProbeError(Exception):
    """A problem the probe reports in one line."""


# ---------------------------------------------------------------------------------------------- weights

class _Storage:
    def __init__(self, dtype, count):
        self.dtype, self.count, self.data = dtype, count, None


class _Deferred:
    """A tensor whose storage bytes come after the pickle in the legacy format."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        return np.lib.stride_tricks.as_strided(data[self.offset:], self.size,
                                               [step * data.itemsize for step in self.stride]).copy()


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickles a legacy torch.save file's object graph with numpy stand-ins; nothing else may be loaded."""

    def __init__(self, stream, storages):
        super().__init__(stream)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *_: _Deferred(storage, offset, size, stride)
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the weights file")

    def persistent_load(self, pid):
        kind, dtype, key, _location, count = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        return self.storages.setdefault(key, _Storage(dtype, count))


def read_legacy_checkpoint(path: Path) -> dict:
    """The object saved by a pre-1.6 `torch.save` (nested dicts of tensors), with every tensor as a numpy array.
    The format: pickles of the magic number, protocol version and system info, the object graph (tensors point to
    storages by key), the sorted storage keys, then per key an int64 element count and the raw little-endian data.
    """
    with open(path, "rb") as stream:
        try:
            if pickle.load(stream) != LEGACY_MAGIC:
                raise ProbeError(f"{path} is not a legacy PyTorch checkpoint")
            pickle.load(stream), pickle.load(stream)  # protocol version, system info
            storages = {}
            graph = _LegacyUnpickler(stream, storages).load()
            for key in pickle.load(stream):
                (count,) = struct.unpack("<q", stream.read(8))
                storage = storages[key]
                storage.data = np.frombuffer(stream.read(count * np.dtype(storage.dtype).itemsize), storage.dtype)
        except (pickle.UnpicklingError, EOFError, KeyError, struct.error, ValueError) as error:
            raise ProbeError(f"cannot read {path}: {error}") from error

    def resolve(value):
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        return value.array() if isinstance(value, _Deferred) else value

    return resolve(graph)


def default_weights() -> Path | None:
    """resemblyzer/pretrained.pt of the installed package, found without importing it (that would need torch)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    return path if path.is_file() else None


def build_encoder(state: dict):
    """Keras model: (partials, PARTIAL_FRAMES, N_MELS) mel -> its 3 LSTM layers' outputs, each (partials, frames,
    256). PyTorch's LSTM gate order (i, f, g, o) is Keras' (i, f, c, o); its two biases add up to Keras' one."""
    import tensorflow as tf

    inputs = tf.keras.Input((PARTIAL_FRAMES, N_MELS))
    layer_outputs, x = [], inputs
    for index in range(3):
        lstm = tf.keras.layers.LSTM(HIDDEN, return_sequences=True)
        x = lstm(x)
        lstm.set_weights([state[f"lstm.weight_ih_l{index}"].T, state[f"lstm.weight_hh_l{index}"].T,
                          state[f"lstm.bias_ih_l{index}"] + state[f"lstm.bias_hh_l{index}"]])
        layer_outputs.append(x)
    return tf.keras.Model(inputs, layer_outputs)


@dataclasses.dataclass(frozen=True)
class Ge2e:
    """The encoder: its Keras LSTM stack, the checkpoint's arrays (for the final linear layer) and the weights
    file's hash (which keys the feature caches)."""

    model: object
    state: dict
    sha: str
    kinds = GE2E_KINDS

    def features(self, waveform: np.ndarray) -> dict[str, np.ndarray]:
        return clip_features(waveform, self)


def load_ge2e(path: Path) -> Ge2e:
    state = read_legacy_checkpoint(path)
    state = state.get("model_state", state)
    return Ge2e(build_encoder(state), state, hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12])


def speaker_embedding(last_layer: np.ndarray, state: dict) -> np.ndarray:
    """(256,) unit-norm utterance embedding: ReLU(linear(last LSTM state)) per partial, unit-normed, averaged and
    unit-normed again (Resemblyzer's embed_utterance)."""
    partial = np.maximum(last_layer[:, -1] @ state["linear.weight"].T + state["linear.bias"], 0.0)
    partial /= np.linalg.norm(partial, axis=1, keepdims=True) + 1e-9
    mean = partial.mean(axis=0)
    return mean / (np.linalg.norm(mean) + 1e-9)


# ---------------------------------------------------------------------------------------------- features

def lowpass(waveform: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Brick-wall low-pass in the frequency domain (the evaluation sets band-limited to the training band)."""
    spectrum = np.fft.rfft(waveform)
    spectrum[np.fft.rfftfreq(len(waveform), 1.0 / SAMPLE_RATE) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, len(waveform)).astype(np.float32)


def encoder_mel(waveform: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel of a -30 dBFS copy of the clip, padded to at least one partial."""
    rms = float(np.sqrt(np.mean(waveform ** 2))) + 1e-9
    scaled = waveform * (10 ** (TARGET_DBFS / 20) / rms)
    mel = librosa.feature.melspectrogram(y=scaled, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                         n_mels=N_MELS).T.astype(np.float32)
    return np.pad(mel, ((0, max(0, PARTIAL_FRAMES - len(mel))), (0, 0)))


def partials(mel: np.ndarray) -> np.ndarray:
    """(n, PARTIAL_FRAMES, 40) overlapping 1.6 s partials, PARTIALS_PER_S of them per second."""
    step = int(round(SAMPLE_RATE / PARTIALS_PER_S / HOP))
    return np.stack([mel[start:start + PARTIAL_FRAMES] for start in range(0, len(mel) - PARTIAL_FRAMES + 1, step)])


def clip_features(waveform: np.ndarray, encoder: Ge2e) -> dict[str, np.ndarray]:
    """One vector per GE2E_KINDS name for a 16 kHz clip."""
    mel = encoder_mel(waveform)
    layers = encoder.model.predict(partials(mel), verbose=0)
    result = {"ge2e_emb": speaker_embedding(layers[-1], encoder.state)}
    for index, outputs in enumerate(layers, 1):
        frames = outputs.reshape(-1, HIDDEN)
        result[f"ge2e_h{index}"] = np.concatenate([frames.mean(axis=0), frames.std(axis=0)])
    log_mel = np.log(mel + 1e-6)
    result["logmel40"] = np.concatenate([log_mel.mean(axis=0), log_mel.std(axis=0)])
    return result


@dataclasses.dataclass(frozen=True)
class SpeechEmbedding:
    """openWakeWord's speech_embedding: two onnxruntime sessions (mel front end, embedding net) and their files'
    hash (which keys the feature caches)."""

    mel_session: object
    embedding_session: object
    sha: str
    kinds = OWW_KINDS

    def features(self, waveform: np.ndarray) -> dict[str, np.ndarray]:
        """One vector per OWW_KINDS name for a 16 kHz clip. The clip is set to -30 dBFS first, as GE2E's is, so
        that loudness, which differs by source, cannot be a cue; clips under one window are zero-padded."""
        rms = float(np.sqrt(np.mean(waveform ** 2))) + 1e-9
        scaled = np.clip(waveform * (10 ** (TARGET_DBFS / 20) / rms), -1.0, 1.0) * 32767.0
        scaled = np.pad(scaled, (0, max(0, SAMPLE_RATE - len(scaled)))).astype(np.float32)
        mel = self.mel_session.run(None, {"input": scaled[None]})[0].reshape(-1, 32) / 10.0 + 2.0
        windows = oww_windows(mel)
        embeddings = self.embedding_session.run(None, {"input_1": windows[..., None]})[0].reshape(-1, OWW_DIM)
        return {"oww_mel": np.concatenate([mel.mean(axis=0), mel.std(axis=0)]),
                "oww_emb": np.concatenate([embeddings.mean(axis=0), embeddings.std(axis=0)])}


def oww_windows(mel: np.ndarray) -> np.ndarray:
    """(n, OWW_WINDOW, bands) windows every OWW_STEP frames; the tail shorter than a window is dropped, as
    openWakeWord drops it."""
    starts = range(0, len(mel) - OWW_WINDOW + 1, OWW_STEP)
    return np.stack([mel[start:start + OWW_WINDOW] for start in starts]).astype(np.float32)


def default_oww_models() -> Path | None:
    """The installed openwakeword package's model folder, found without importing it."""
    spec = importlib.util.find_spec("openwakeword")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "models"


def load_speech_embedding(folder: Path) -> SpeechEmbedding:
    import onnxruntime

    files = [Path(folder) / "melspectrogram.onnx", Path(folder) / "embedding_model.onnx"]
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise ProbeError(f"no openWakeWord models ({', '.join(missing)}): pip install --no-deps "
                         "openwakeword==0.4.0, or pass --weights FOLDER")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    sessions = [onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for path in files]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:12]
    return SpeechEmbedding(*sessions, digest)


def load_encoder(name: str, weights: Path | None):
    """The `--encoder` named, from `weights` or the installed package's files; ProbeError if they are absent."""
    if name == "oww":
        return load_speech_embedding(weights or default_oww_models() or Path("openwakeword-not-installed"))
    weights = weights or default_weights()
    if weights is None or not Path(weights).is_file():
        raise ProbeError("no GE2E weights: pip install --no-deps resemblyzer==0.1.4, or pass --weights")
    return load_ge2e(weights)


def feature_table(name: str, paths: list[str], encoder, cache_dir: Path,
                  cutoff_hz: float | None = None) -> dict[str, np.ndarray]:
    """{kind: (n_files, dim)} plus `ok` (False where the file could not be read), cached per file list."""
    key = hashlib.sha256(json.dumps([paths, encoder.sha, cutoff_hz]).encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"{name}_{key}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            return {kind: saved[kind] for kind in saved.files}
    params = Params(sample_rate=SAMPLE_RATE, fmax=SAMPLE_RATE / 2)  # only the loader's settings are used
    rows, ok = [], []
    for path in tqdm(paths, desc=f"encoding {name}", unit="file"):
        try:
            waveform, _ = audio.load_audio(Path(path), params)
        except audio.AudioError as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
            rows.append(None)
            ok.append(False)
            continue
        rows.append(encoder.features(lowpass(waveform, cutoff_hz) if cutoff_hz else waveform))
        ok.append(True)
    if not any(ok):
        raise ProbeError(f"none of the {len(paths)} files of {name} could be read")
    template = next(row for row in rows if row is not None)
    table = {kind: np.stack([row[kind] if row is not None else np.zeros_like(template[kind]) for row in rows])
             for kind in encoder.kinds}
    table["ok"] = np.asarray(ok)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, **table)
    return table


# ---------------------------------------------------------------------------------------------- probe

@dataclasses.dataclass(frozen=True)
class Probe:
    """A fitted head on standardised features, with the regularisation setting validation chose."""

    scaler: object
    classifier: object
    setting: float
    val_auc: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Higher = more likely fake (the logistic regression's logit, the perceptron's probability)."""
        inputs = self.scaler.transform(features)
        if hasattr(self.classifier, "decision_function"):
            return self.classifier.decision_function(inputs)
        return self.classifier.predict_proba(inputs)[:, 1]


def fit_probe(train_x, train_y, val_x, val_y, head: str = "linear", seed: int = 0) -> Probe:
    """Standardise, then fit `head` once per setting of its grid (HEADS); keep the best by validation AUC."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    best = None
    for setting in HEADS[head]:
        classifier = (LogisticRegression(C=setting, max_iter=5000) if head == "linear" else
                      MLPClassifier((64,), alpha=setting, max_iter=500, random_state=seed))
        with warnings.catch_warnings():  # weakly regularised perceptrons stop at max_iter: expected, and noisy
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(scaler.transform(train_x), train_y)
        probe = Probe(scaler, classifier, setting, 0.0)
        probe = dataclasses.replace(probe, val_auc=metrics.roc_auc(val_y, probe.scores(val_x)))
        if best is None or probe.val_auc > best.val_auc:
            best = probe
    return best


def eer_percent(labels, scores) -> float:
    return 100.0 * metrics.compute_eer(labels, scores)[0]


def split_eer(files, features: np.ndarray, row_of: dict, head: str, seed: int) -> tuple[float, Probe]:
    """Train on a split table's train files, regularise by val, return (test EER %, fitted probe)."""
    parts = {}
    for split in ("train", "val", "test"):
        chosen = files[(files["split"] == split) & files["source_path"].map(row_of).notna()]
        parts[split] = (features[chosen["source_path"].map(row_of).to_numpy(int)],
                        (chosen["class"] == "fake").to_numpy(int))
    probe = fit_probe(*parts["train"], *parts["val"], head, seed)
    return eer_percent(parts["test"][1], probe.scores(parts["test"][0])), probe


def probe_corpus(name: str, corpus: Path, settings, encoder, eval_sets: dict, head: str) -> dict:
    """{kind: [per-seed result dicts]} for one corpus."""
    data_dir = benchmark.render_corpus(settings, name, corpus, Params())  # the same pictures, hence the same splits
    cache_dir = Path(settings.work_dir) / "encoder_probe"
    results = {kind: [] for kind in encoder.kinds}
    corpus_features = None
    for seed in settings.seeds:
        table = benchmark.split_corpus(corpus, data_dir, seed, cache_dir / f"{name}_seed{seed}.csv")
        files = table.drop_duplicates("source_path").reset_index(drop=True)
        if corpus_features is None:
            paths = sorted(files["source_path"])
            corpus_features = feature_table(name, paths, encoder, cache_dir)
            row_of = {path: index for index, path in enumerate(paths) if corpus_features["ok"][index]}
        families, _ = benchmark.held_out_families(files, None)
        sources = benchmark.held_out_sources(files)
        fraction = settings.loso_train_fraction
        for kind in encoder.kinds:
            x = corpus_features[kind]
            result = {"seed": seed}
            result["in-domain"], probe = split_eer(files, x, row_of, head, seed)
            result.update(setting=probe.setting, val_auc=round(probe.val_auc, 3))
            # A fold whose train or val split lacks a class is skipped, as bench/generalisation.py skips it.
            family_folds = {family: benchmark.loso_table(files, family, fraction, seed) for family in families}
            source_folds = {source: benchmark.source_fold_table(files, source, fraction, seed) for source in sources}
            for key, folds in (("families", family_folds), ("sources", source_folds)):
                result[key] = {held_out: split_eer(fold, x, row_of, head, seed)[0]
                               for held_out, fold in folds.items() if benchmark.training_problem(fold) is None}
            for set_name, (labels, set_features) in eval_sets.items():
                kept = set_features["ok"]
                result[set_name] = eer_percent(labels[kept], probe.scores(set_features[kind][kept]))
            results[kind].append(result)
    return results


def evaluation_features(settings, encoder, cutoff_hz: float | None) -> dict:
    """{name: (labels, features)} of the evaluation-only sets that are present."""
    from deepfake_detector.report.evaluation import load_labelled_data

    found = {}
    for name, manifest, split in benchmark.CROSS_DATASETS:
        path = Path(settings.shared_data) / manifest
        if not path.is_file():
            print(f"{name}: skipped, {path} not found (the shared data folder is absent)", file=sys.stderr)
            continue
        table = load_labelled_data(path, split)
        labels = (table["label"] == "fake").to_numpy(int)
        found[name] = (labels, feature_table(name, list(table["path"]), encoder,
                                             Path(settings.work_dir) / "encoder_probe", cutoff_hz))
    return found


def mean_sd(values: list[float]) -> str:
    values = np.asarray(values, float)
    spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
    return f"{values.mean():.1f}{spread}"


def markdown(all_results: dict, eval_names: list[str], header: str) -> str:
    columns = ["in-domain", benchmark.HELD_OUT_MEAN, benchmark.HELD_OUT_SOURCE_MEAN, *eval_names]
    lines = [header, "", "| corpus | features | C or alpha per seed | val AUC per seed | " + " | ".join(columns) + " |",
             "|" + "---|" * (len(columns) + 4)]
    for corpus, results in all_results.items():
        for kind, runs in results.items():
            cells = [mean_sd([run["in-domain"] for run in runs]),
                     mean_sd([np.mean(list(run["families"].values())) for run in runs if run["families"]] or [np.nan]),
                     mean_sd([np.mean(list(run["sources"].values())) for run in runs if run["sources"]] or [np.nan])]
            cells += [mean_sd([run[name] for run in runs]) for name in eval_names]
            lines.append(f"| {corpus} | {kind} | {' / '.join(str(run['setting']) for run in runs)} | "
                         f"{' / '.join(str(run['val_auc']) for run in runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", type=benchmark_corpus, action="append", required=True, metavar="NAME=PATH",
                        help="corpus folder with demo_manifest.csv and groups.csv; repeat for several")
    parser.add_argument("--work", type=Path, default=benchmark.BenchmarkSettings.work_dir,
                        help="the generalisation bench's work folder (rendered pictures are reused for the splits)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"), help="where encoder_probe.md/.json go")
    parser.add_argument("--shared-data", type=Path, default=benchmark.BenchmarkSettings.shared_data)
    parser.add_argument("--seeds", default="42,7,1", help="comma-separated seeds (each sets the split)")
    parser.add_argument("--encoder", choices=("ge2e", "oww"), default="ge2e",
                        help="Resemblyzer's GE2E speaker encoder, or openWakeWord's speech embedding")
    parser.add_argument("--weights", type=Path, default=None,
                        help="GE2E weights file, or the folder of openWakeWord's two .onnx files (default: those "
                             "of the installed resemblyzer or openwakeword package)")
    parser.add_argument("--head", choices=tuple(HEADS), default="linear",
                        help="the probe: logistic regression, or a perceptron with one hidden layer of 64 units")
    parser.add_argument("--eval-lowpass", type=float, default=None, metavar="HZ",
                        help="band-limit the evaluation sets to the training build's band (default: full band)")
    args = parser.parse_args(argv)
    try:
        args.seeds = tuple(int(seed) for seed in args.seeds.split(","))
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds}")
    return args


def benchmark_corpus(text: str) -> tuple[str, Path]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got '{text}'")
    return name, Path(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    try:
        encoder = load_encoder(args.encoder, args.weights)
        settings = benchmark.BenchmarkSettings(corpora=tuple(args.corpus), work_dir=args.work,
                                               shared_data=args.shared_data, seeds=args.seeds)
        eval_sets = evaluation_features(settings, encoder, args.eval_lowpass)
        all_results = {name: probe_corpus(name, corpus, settings, encoder, eval_sets, args.head)
                       for name, corpus in settings.corpora}
    except (ProbeError, benchmark.BenchmarkError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    band = f"evaluation sets low-passed at {args.eval_lowpass:g} Hz" if args.eval_lowpass else "full band"
    header = (f"EER in %, mean ± sd over seeds {', '.join(map(str, args.seeds))}; {args.head} probe on {args.encoder} features; "
              f"{band}; {time.time() - started:.0f} s")
    report = markdown(all_results, list(eval_sets), header)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "encoder_probe.md", report)
    atomic_write_text(args.out / "encoder_probe.json", json.dumps(all_results, indent=1, default=float) + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
