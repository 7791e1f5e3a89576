"""Wire contracts shared by every HTTP service and its clients (DESIGN §6): pydantic models beside
:mod:`giqa.schemas`. Request/response models of one service live with that service's contract module;
what every service shares lives here: the one JSON error shape.

Every failure a service answers (a 4xx for bad input, a 5xx for a backend fault, a 503 when overloaded)
has the body ``{"error": {"code": ..., "message": ..., "detail": ..., "request_id": ...}}``: ``code`` is a
stable machine-readable word (``bad_request``, ``invalid_image``, ``payload_too_large``, ``unauthorized``,
``not_found``, ``overloaded``, ``timeout``, ``backend_error``, ``internal``), ``message`` one sentence for
people, ``detail`` optional structure (e.g. the fields that failed validation).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable machine-readable error code")
    message: str = Field(description="what was wrong, in one sentence")
    detail: Any = Field(None, description="optional structure, e.g. the request fields that failed")
    request_id: str = Field("", description="the X-Request-ID of the request, for the logs")


class ErrorBody(BaseModel):
    """The one error shape every service answers with."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


class HealthBody(BaseModel):
    status: str = Field(description="'ok' or 'unavailable'")
    service: str
    detail: str = ""
