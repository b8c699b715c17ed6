"""From benchmark to app: ``recommend`` races the methods on a user's labelled data, ``export``
writes the winner as a self-contained predictor folder, ``Predictor`` loads and runs it.

This layer sits above the harness and the report (it needs both) and below the CLI.
"""
