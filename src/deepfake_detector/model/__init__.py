"""Networks, tf.data input, training, saved models and scoring."""
