"""The detector service: batched Grounding DINO detection behind ``POST /v1/detect``."""
