"""Labelled text data and episodes.

``example`` (Example, LabelledDataset), ``fields`` (which row fields hold text and label),
``sources`` (builtin datasets and local files), ``hub`` (Hugging Face datasets, imported only
for hub ids), ``episodes`` (class splits and episode sampling), ``prediction`` (what a method
returns for an episode). The public names are imported from ``iclmeta`` itself.
"""
