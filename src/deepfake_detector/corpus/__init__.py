"""The offline demo corpus: sources, synthesisers and vocoders."""
