"""The benchmark harness: ``evaluate(config)`` runs every method on the same episodes.

``evaluate`` (the run), ``run_folder`` (which folder, whether it may be written, its lock),
``provenance`` (versions, hashes, date beside the settings), ``store`` (results.jsonl),
``registry`` (method names), ``resources`` (the shared LM / embedder / prompt builder),
``distributed`` (several processes), ``show_prompt`` (what ``iclmeta prompt`` prints).
"""
