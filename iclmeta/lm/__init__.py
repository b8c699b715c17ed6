"""Language models behind one small protocol (``iclmeta.lm.protocol.LM``).

Modules: ``hf`` (the Hugging Face backend), ``prefix`` (shared-prefix KV reuse and label
scoring), ``candidates`` (the label continuations), ``modes`` (direct / normalized /
calibrated / channel / generate scoring). Importing this package loads nothing heavy;
``iclmeta.lm.hf`` imports torch.
"""
