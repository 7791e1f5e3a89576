"""Every test runs offline: transformers and huggingface_hub may read local folders only, never a hub."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
