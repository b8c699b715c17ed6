"""Labelled text data and episodes.

``example`` (Example, LabelledDataset), ``fields`` (which row fields hold the inputs and the
label; the builtin names), ``files`` (rows of CSV/TSV/JSON/JSONL/Parquet files), ``rows``
(rows into examples; the label checks), ``shipped`` (the builtin datasets), ``sources``
(load_dataset: builtin, files, one file per split, hub), ``hub`` (Hugging Face datasets,
imported only for hub ids), ``episodes`` (class splits and episode sampling), ``prediction``
(what a method returns for an episode). The public names are imported from ``iclmeta`` itself.
"""
