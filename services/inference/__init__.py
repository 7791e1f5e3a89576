"""The inference service: grounded-IQA answers over HTTP for image-editing apps (see README.md)."""
