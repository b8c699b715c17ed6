"""Metric baselines over sentence embeddings: knn, protonet, matching, relation.

``nets`` (the learnable parts), ``train`` (episodic training), ``checkpoints`` (their folders),
``methods`` (evaluation).
"""
