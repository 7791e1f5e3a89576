"""Model builders and loaders: tiny LLaVA/LLaVA-NeXT from configs, LLaVA-family checkpoint loading.

Import the submodules (``giqa.models.tiny``, ``giqa.models.llava``); they import torch/transformers lazily.
"""
