"""Model backends behind the ports (:mod:`giqa.ports`): Grounding DINO, Q-Instruct, the classical judge.

Import the submodules; the torch-based ones import torch/transformers when a backend is built, not before.
"""
