"""The pair loss: a PairLossTrainer fits a classifier on binary cross-entropy plus a supervised contrastive loss
over batches of pair sets (see pairs.py for the sampler and what the loss is and is not)."""
from __future__ import annotations

import keras

from deepfake_detector.model.pairs import PAIR_LOSSES


def supervised_contrastive_loss(embeddings, labels, temperature: float):
    """Khosla et al. (2020), eq. 2: mean over anchors of -mean over same-class positives of
    log softmax(z_anchor . z / temperature), softmax over every other picture of the batch; z L2-normalised.
    Anchors without a positive in the batch are left out; a batch without any gives 0."""
    import tensorflow as tf

    z = tf.math.l2_normalize(tf.cast(embeddings, tf.float32), axis=1)  # (n, d)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    n = tf.shape(z)[0]
    self_pairs = tf.eye(n, dtype=tf.bool)
    logits = tf.where(self_pairs, tf.constant(-1e9, tf.float32), tf.matmul(z, z, transpose_b=True) / temperature)
    log_prob = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
    positives = tf.cast(tf.logical_and(tf.equal(labels[:, None], labels[None, :]), ~self_pairs), tf.float32)
    n_positives = tf.reduce_sum(positives, axis=1)
    per_anchor = -tf.reduce_sum(positives * log_prob, axis=1) / tf.maximum(n_positives, 1.0)
    has_positive = tf.cast(n_positives > 0, tf.float32)
    return tf.reduce_sum(per_anchor * has_positive) / tf.maximum(tf.reduce_sum(has_positive), 1.0)


@keras.saving.register_keras_serializable(package="deepfake_detector")
class PairLossTrainer(keras.Model):
    """Fits `classifier` on binary cross-entropy plus `pair_weight` x the pair loss on its embedding (the input
    of its final `p_fake` layer). Predicts exactly as the classifier; training saves the classifier alone.

    train_step follows Keras' own TensorFlow train_step; the pair term is divided by the number of replicas as
    Keras divides the compiled loss, so MirroredStrategy's sum over replicas gives the mean."""

    def __init__(self, classifier: keras.Model, pair_loss: str = "contrastive", pair_weight: float = 0.5,
                 temperature: float = 0.1, **kwargs):
        kwargs.setdefault("name", f"{classifier.name}_pair_trainer")
        super().__init__(**kwargs)
        if pair_loss not in PAIR_LOSSES or pair_loss == "none":
            raise ValueError(f"unknown pair loss '{pair_loss}'; choose one of: {', '.join(PAIR_LOSSES[1:])}")
        self.classifier = classifier
        self.pair_loss, self.pair_weight, self.temperature = pair_loss, float(pair_weight), float(temperature)
        # Shares the classifier's layers and weights; Keras deduplicates the shared variables.
        self.features = keras.Model(classifier.inputs,
                                    [classifier.get_layer("p_fake").input, classifier.outputs[0]])

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def pair_term(self, embeddings, labels):
        return self.pair_weight * supervised_contrastive_loss(embeddings, labels, self.temperature)

    def train_step(self, data):
        import tensorflow as tf

        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            embeddings, y_pred = self.features(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)  # already scaled per replica
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss = loss + self.pair_term(embeddings, y) / replicas
            self._loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(x)[0])
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self.compute_metrics(x, y, y_pred)

    def get_config(self) -> dict:
        return {"classifier": keras.saving.serialize_keras_object(self.classifier), "pair_loss": self.pair_loss,
                "pair_weight": self.pair_weight, "temperature": self.temperature, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "PairLossTrainer":
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


def classifier_of(model: keras.Model) -> keras.Model:
    """The network to save and score: the classifier inside a PairLossTrainer, else the model itself."""
    return model.classifier if isinstance(model, PairLossTrainer) else model
