"""Meta-learning over LoRA adapter weights: maml, fomaml, reptile, multitask, and plain finetune.

``lora`` (functional fast weights), the algorithms, ``trainer``/``train`` (the meta-training
loop), ``checkpoints`` (adapter folders), ``methods`` (evaluation: adapt on each episode's support).
"""
