"""Meta-learning over LoRA adapter weights: maml, fomaml, reptile, multitask, and plain finetune.

``lora`` (functional fast weights), ``adaptation`` (the shared inner loop and test-time
adaptation), ``algorithms`` (the ``MetaAlgorithm`` protocol and the ``ALGORITHMS`` registry
over ``maml``, ``reptile``, ``multitask``), ``trainer``/``train`` (the meta-training loop),
``checkpoints`` (adapter folders), ``methods`` (evaluation: adapt on each episode's support).
"""
