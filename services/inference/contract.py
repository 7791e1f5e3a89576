"""The inference service's request/response models: one home, :mod:`giqa.client.contract` (installed with
the package, so the typed client of downstream apps validates the same shapes); re-exported here as the
service's contract module."""

from giqa.client.contract import *  # noqa: F403
from giqa.client.contract import __all__ as __all__  # noqa: F401
