"""Which tf.distribute strategy trains, where this process sits in a cluster, and who writes the outputs.

`--strategy`:
- `mirrored`: MirroredStrategy on one machine: every visible GPU, or the CPU split into N logical devices.
- `multiworker`: MultiWorkerMirroredStrategy across machines. TensorFlow reads the cluster from the `TF_CONFIG`
  environment variable ({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}});
  every worker runs the same command on the same data folder, and worker 0 (or the task of type "chief") is
  the chief, the only one that writes outputs.
- `default`: TensorFlow's default strategy (one device, no replication).
- `auto`: `multiworker` when TF_CONFIG is set, otherwise `mirrored` (as before this option existed).
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multiworker", "default")


def resolve_strategy_name(requested: str, environ=os.environ) -> str:
    """The strategy `auto` stands for, or `requested` itself; raises ValueError on a bad request."""
    if requested not in STRATEGIES:
        raise ValueError(f"unknown strategy '{requested}'; choose one of: {', '.join(STRATEGIES)}")
    if requested == "auto":
        return "multiworker" if environ.get("TF_CONFIG") else "mirrored"
    if requested == "multiworker" and not environ.get("TF_CONFIG"):
        raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable (the cluster's "
                         "worker addresses and this worker's index); see the README")
    return requested


def check_tf_config(environ=os.environ) -> None:
    """Fail in one line on a TF_CONFIG that TensorFlow would reject with a long trace (or silently ignore)."""
    text = environ.get("TF_CONFIG")
    if not text:
        return
    try:
        config = json.loads(text)
        workers = config["cluster"].get("worker", []) + config["cluster"].get("chief", [])
        task_type, index = config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG is not usable ({type(error).__name__}: {error}); expected "
                         '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}')
    if not workers or index >= len(config["cluster"].get(task_type, [])):
        raise ValueError(f"TF_CONFIG task {task_type} {index} is not in its cluster {config['cluster']}")


def make_strategy(devices: int, name: str = "mirrored") -> tf.distribute.Strategy:
    """The strategy called `name` (see module doc; `auto` is resolved from TF_CONFIG).

    Logical devices and the collective-ops runtime can only be configured before TensorFlow initialises its
    runtime, so call this before any other TensorFlow op.
    """
    name = resolve_strategy_name(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        check_tf_config()
        patch_keras_for_multi_worker()
        # One replica per worker on a CPU (every local GPU otherwise); TensorFlow starts a gRPC server at this
        # worker's address and waits for the others before returning.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _mirrored(devices)


def _mirrored(devices: int) -> tf.distribute.MirroredStrategy:
    """MirroredStrategy over every visible GPU, or over `devices` logical CPUs carved from the physical CPU."""
    if devices < 1:
        raise ValueError(f"--devices must be at least 1, got {devices}")
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError as error:
        # Already started (a benchmark scores reused models first): fine if it already has that many devices.
        if len(tf.config.list_logical_devices("CPU")) != devices:
            raise RuntimeError(f"cannot split the CPU into {devices} devices after TensorFlow started: {error}")
    return tf.distribute.MirroredStrategy(devices=[f"/cpu:{index}" for index in range(devices)])


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_count(strategy: tf.distribute.Strategy) -> int:
    if not is_multi_worker(strategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(spec.get("worker", [])) + len(spec.get("chief", []))


def task_name(strategy: tf.distribute.Strategy) -> str:
    """'worker-1', 'chief-0', or 'local' on one machine."""
    if not is_multi_worker(strategy):
        return "local"
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type}-{resolver.task_id}"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes outputs: the 'chief' task, or worker 0 when the cluster has none."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    # TensorFlow's class behind tf.distribute.MultiWorkerMirroredStrategy is called CollectiveAllReduceStrategy.
    return "MultiWorkerMirroredStrategy" if is_multi_worker(strategy) else type(strategy).__name__


def describe(strategy: tf.distribute.Strategy) -> str:
    """The start-up line, e.g. 'MultiWorkerMirroredStrategy: 2 workers, 2 replicas (this is worker-1)'."""
    workers, replicas = worker_count(strategy), strategy.num_replicas_in_sync
    line = (f"{strategy_name(strategy)}: {workers} worker{'s' * (workers != 1)}, "
            f"{replicas} replica{'s' * (replicas != 1)}")
    if is_multi_worker(strategy):
        return line + f" (this is {task_name(strategy)}{', the chief' if is_chief(strategy) else ''})"
    return line + f" on {', '.join(strategy.extended.worker_devices)}"


def patch_keras_for_multi_worker() -> None:
    """Work around two Keras 3 bugs that stop model.fit under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    1. Before the first step fit() builds the model from a batch that it averages across replicas with
       strategy.reduce; in multi-worker mode that reduce cannot take the (pictures, labels) tuple. The build only
       needs shapes, so this worker's own first batch does.
    2. Every step averages the per-replica logs (scalars) with strategy.reduce(axis=0), which fails on scalars;
       averaging across replicas without an axis is what was meant.
    Both changes apply only when the strategy really is multi-worker; everything else runs Keras' own code.
    Epoch-end logs (what EarlyStopping and ModelCheckpoint see) come from the metric variables, which Keras reads
    across all workers, so every worker takes the same early-stopping decision.
    """
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_deepfake_detector_patched", False):
        return
    original_reduce, original_build = trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None)
                if isinstance(value, tf.distribute.DistributedValues) else value, values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or not trainer._collective_all_reduce_multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0],
                                               next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._deepfake_detector_patched = True
