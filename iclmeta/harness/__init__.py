"""The benchmark harness: ``evaluate(config)`` runs every method on the same episodes.

``evaluate`` (the run), ``store`` (results.jsonl), ``registry`` (method names), ``resources``
(the shared LM / embedder / prompt builder), ``distributed`` (several processes),
``show_prompt`` (what ``iclmeta prompt`` prints).
"""
