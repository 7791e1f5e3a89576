"""Training: the VLM trainer and the demo detector trainer (``giqa.training.detector``)."""
