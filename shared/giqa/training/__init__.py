"""Supervised fine-tuning of LLaVA-family models on grounded-IQA conversations (``giqa train``), and the
demo detector's trainer (``giqa train-detector``, :mod:`detector`).

:mod:`config` (TrainConfig, presets), :mod:`data` (dataset, collator, bad rows), :mod:`masking` (loss on
answers only), :mod:`trainer` (transformers ``Trainer`` subclass), :mod:`checkpoints` (atomic, resumable),
:mod:`callbacks` (metrics JSONL, time budget, loss curve), :mod:`run` (one run end to end).
"""
