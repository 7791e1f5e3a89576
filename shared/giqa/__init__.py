"""giqa: grounding image quality assessment — core formats, GIQA-Synth, pipeline, metrics.

The core (``boxes``, ``grid``, ``grounded_text``, ``schemas``, ``questions``, ``synth``) imports
without torch or a network; model backends and services live behind optional extras.
"""

__version__ = "0.1.0"
