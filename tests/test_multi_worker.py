"""Multi-worker training: a chief and a worker as two local processes on loopback ports, TF_CONFIG as a cluster
manager would set it; strategy names and TF_CONFIG checks."""
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_detector.model.distribute import check_tf_config, resolve_strategy_name
from synthetic_spectrograms import make_spectrogram_folder

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRAIN_CNN = PROJECT_ROOT / "src" / "train_cnn.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def test_auto_is_multiworker_only_when_tf_config_is_set():
    assert resolve_strategy_name("auto", {}) == "mirrored"
    assert resolve_strategy_name("auto", {"TF_CONFIG": tf_config(["127.0.0.1:1"], 0)}) == "multiworker"
    assert resolve_strategy_name("default", {"TF_CONFIG": "x"}) == "default"
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        resolve_strategy_name("multiworker", {})
    with pytest.raises(ValueError, match="unknown strategy"):
        resolve_strategy_name("parameter-server", {})


def test_a_broken_tf_config_fails_in_one_line():
    check_tf_config({"TF_CONFIG": tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1)})
    for broken in ("{not json", json.dumps({"task": {"type": "worker", "index": 0}}),
                   tf_config(["127.0.0.1:1"], 3)):
        with pytest.raises(ValueError, match="TF_CONFIG"):
            check_tf_config({"TF_CONFIG": broken})


@pytest.mark.slow
def test_chief_and_worker_train_one_model_with_the_same_steps(tmp_path):
    data_dir = make_spectrogram_folder(tmp_path / "spectrograms", files_per_split={"train": 6, "val": 2, "test": 2})
    models_dir = tmp_path / "models"  # shared by both, as on a shared file system
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    command = [sys.executable, str(TRAIN_CNN), "--data", str(data_dir), "--model", "compact", "--epochs", "1",
               "--batch-size", "4", "--name", "cluster", "--models-dir", str(models_dir),
               "--plots-dir", str(tmp_path / "plots"), "--strategy", "multiworker"]
    processes = [subprocess.Popen(command, cwd=PROJECT_ROOT, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env={**os.environ, "TF_CONFIG": tf_config(workers, index)})
                 for index in range(2)]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=600))
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stdout[-2000:] + stderr[-3000:]
        assert "MultiWorkerMirroredStrategy: 2 workers, 2 replicas" in stdout
    chief_out, worker_out = outputs[0][0], outputs[1][0]
    assert "worker-0, the chief" in chief_out and "worker-1)" in worker_out
    # One model, written by the chief; the worker's scratch folder and the backup are gone.
    assert sorted(path.name for path in models_dir.glob("*.keras")) == ["cluster.keras"]
    assert sorted(path.name for path in models_dir.iterdir() if path.name.startswith(".")) == []
    assert not (models_dir / "cluster.backup").exists()
    training = json.loads((models_dir / "cluster.json").read_text())["training"]
    assert training["workers"] == 2 and training["replicas"] == 2 and training["global_batch_size"] == 8
    worker_steps = json.loads(re.search(r"steps per epoch (\[[\d, ]+\])", worker_out).group(1))
    assert training["steps_per_epoch"] == worker_steps and worker_steps[0] > 0
    # 16 train pictures (two of each class are two windows long) in global batches of 8: two steps each.
    assert worker_steps == [2]
