"""A registered checkpoint as a folder on this machine, by name (the trainer registers, others load).

The ``checkpoints`` table maps a name to the object-store prefix of the model's files (and the folder on
the worker that trained it). :func:`local_checkpoint` answers with that folder when it exists here (the
same machine or a shared volume), else fetches the files once into ``<checkpoint_cache_dir>/<name>``
(renamed into place when complete, so concurrent callers never load half a model). The inference service
and the evaluator load models by name through it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from giqa.settings import Settings, checkpoint_cache_dir


class UnknownCheckpoint(LookupError):
    """No checkpoint is registered under the name."""


def local_checkpoint(
    settings: Settings,
    name: str,
    *,
    sessions: Callable[[], AbstractContextManager[Any]],
    store: Any,
    prefer_local: bool = True,
) -> Path:
    """The folder of checkpoint ``name`` here (see the module docstring). ``sessions``: a callable giving
    a session scope (``WorkerContext.session``, or ``lambda: session_scope(factory)``); ``prefer_local``
    False: always the copy from the object store (a machine that does not share the trainer's disk)."""
    from giqa.infra.db import jobs_dal
    from giqa.infra.storage import get_folder
    from giqa.infra.storage.keys import _scope

    with sessions() as s:
        view = jobs_dal.get_checkpoint(s, name=name)
    if view is None:
        raise UnknownCheckpoint(f"no checkpoint is registered as {name!r}")
    if prefer_local and view.local_path and (Path(view.local_path) / "config.json").is_file():
        return Path(view.local_path)
    return get_folder(store, view.key_prefix, checkpoint_cache_dir(settings) / _scope(name))
