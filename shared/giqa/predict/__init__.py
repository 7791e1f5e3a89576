"""Model runners that turn a bench into a predictions file (DESIGN §3.4).

- :class:`giqa.predict.local.TransformersVLM`: a local LLaVA-1.5 / LLaVA-1.6 checkpoint (transformers);
- :class:`giqa.predict.remote.OpenAIVisionVLM`: an OpenAI-compatible vision endpoint (vLLM serving LLaVA);
- :func:`giqa.predict.runner.run_predictions`: batched, resumable answering of every bench item.
"""
