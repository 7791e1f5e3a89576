"""Shared scaffolding of the HTTP services (:mod:`giqa.service.app`): app factory, errors, keys, metrics."""

from giqa.service.app import ServiceError, create_app, error_response, require_key

__all__ = ["ServiceError", "create_app", "error_response", "require_key"]
