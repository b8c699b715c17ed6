"""The prompting methods: zero-shot, icl (random demonstrations), retrieval, instruct (chat).

``methods`` holds the four methods and the window-fitting rule; ``render`` turns demonstrations,
a query and the scoring mode into the exact prompt texts or chat messages the LM scores.
"""
