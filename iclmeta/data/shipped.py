"""The builtin datasets, vendored in ``builtin/`` (sources and licences in ``builtin/NOTICE``).

>>> ds = load_builtin("presup-nli")
>>> len(ds.labels()), sorted(ds.examples[0].fields), ds.splits()
(3, ['hypothesis', 'premise'], ['test', 'train'])
"""
from __future__ import annotations

from pathlib import Path

from iclmeta.data.example import LabelledDataset
from iclmeta.data.files import read_rows
from iclmeta.data.rows import dataset_from_rows

BUILTIN_DIR = Path(__file__).parent / "builtin"

TREC_COARSE = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity",
               "HUM": "human", "LOC": "location", "NUM": "number"}
# Readable names for the 50 fine TREC classes (Li & Roth's taxonomy), used as verbalizers.
TREC_FINE = {
    "ABBR:abb": "abbreviation", "ABBR:exp": "expansion of an abbreviation",
    "DESC:def": "definition", "DESC:desc": "description", "DESC:manner": "manner",
    "DESC:reason": "reason", "ENTY:animal": "animal", "ENTY:body": "body part",
    "ENTY:color": "color", "ENTY:cremat": "creative work", "ENTY:currency": "currency",
    "ENTY:dismed": "disease or medicine", "ENTY:event": "event", "ENTY:food": "food",
    "ENTY:instru": "musical instrument", "ENTY:lang": "language", "ENTY:letter": "letter",
    "ENTY:other": "other entity", "ENTY:plant": "plant", "ENTY:product": "product",
    "ENTY:religion": "religion", "ENTY:sport": "sport", "ENTY:substance": "substance",
    "ENTY:symbol": "symbol", "ENTY:techmeth": "technique or method",
    "ENTY:termeq": "equivalent term", "ENTY:veh": "vehicle", "ENTY:word": "word",
    "HUM:desc": "description of a person", "HUM:gr": "group or organization",
    "HUM:ind": "individual person", "HUM:title": "title of a person", "LOC:city": "city",
    "LOC:country": "country", "LOC:mount": "mountain", "LOC:other": "other location",
    "LOC:state": "state", "NUM:code": "code", "NUM:count": "count", "NUM:date": "date",
    "NUM:dist": "distance", "NUM:money": "price", "NUM:ord": "rank", "NUM:other": "other number",
    "NUM:perc": "percentage", "NUM:period": "period of time", "NUM:speed": "speed",
    "NUM:temp": "temperature", "NUM:volsize": "size", "NUM:weight": "weight",
}


def load_builtin(name: str, label_field: str | None = None,
                 text_field=None) -> LabelledDataset:
    """A builtin by name (``iclmeta.data.fields.BUILTINS``); for TREC, ``label_field="fine"``
    picks the 50 fine classes. ``text_field`` picks input fields (presup-nli: ``hypothesis``
    alone is the hypothesis-only baseline); an unknown one is an error naming the fields."""
    if name == "snips":
        rows = read_rows(BUILTIN_DIR / "snips.jsonl")
        return dataset_from_rows("snips", rows, "snips", text_field or "text",
                                 label_field or "label", None)
    if name == "presup-nli":
        rows = read_rows(BUILTIN_DIR / "presup_nli.jsonl")
        return dataset_from_rows("presup-nli", rows, "presup-nli",
                                 text_field or ["premise", "hypothesis"], label_field or "label",
                                 "split")
    fine = name == "trec-50" or label_field == "fine"
    rows = read_rows(BUILTIN_DIR / "trec.jsonl")
    ds = dataset_from_rows("trec-50" if fine else "trec-6", rows, "trec", text_field or "text",
                           "fine" if fine else "coarse", "split")
    ds.label_names.update(TREC_FINE if fine else TREC_COARSE)
    return ds
