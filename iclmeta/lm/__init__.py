"""Language models behind one small protocol (``iclmeta.lm.protocol.LM``).

Modules: ``protocol`` (the ``LM`` seam and its result types), ``registry`` (backends by name,
``load_lm``), ``modes`` (direct / normalized / calibrated / channel / generate scoring, over the
protocol only); the Hugging Face backend: ``hf`` (``HFLM``), ``prefix`` (shared-prefix KV reuse
and label scoring), ``candidates`` (the candidate passes), ``kv`` (a long shared prefix held once:
chunked prefill, no per-query copy), ``pairs`` (grouped pair scoring).
Importing this package loads nothing heavy; ``iclmeta.lm.hf`` imports torch.
"""
