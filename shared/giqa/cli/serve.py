"""``giqa serve <service>``: run one HTTP service (``services/<name>/app.py``) under uvicorn.

Every service module exposes ``load_backend(settings)`` (its model, through the composition root) and
``create_app_from_settings(settings, *, backend=None) -> FastAPI``; :data:`SERVICES` maps a service name
to that module and its default port, so adding a service to the command is one line there. The app is
built from :func:`giqa.settings.get_settings` (``GIQA_`` environment), its backend loaded before the port
opens (a bad configuration is a one-line error, exit 2); ``--host``/``--port`` override ``service.host``
and the port. ``--port 0`` binds a free port (the log says which).

The ``services`` package lives beside ``shared/`` in a checkout (it is not part of the ``giqa`` wheel):
when it is not importable, the checkout the running ``giqa`` comes from is put on the path.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from giqa.cli.common import fail

# service name -> (module with load_backend and create_app_from_settings, default port on one machine)
SERVICES: dict[str, tuple[str, int]] = {
    "detector": ("services.detector.app", 8101),
    "iqa_filter": ("services.iqa_filter.app", 8102),
    "annotator": ("services.annotator.app", 8300),
    "trainer": ("services.trainer.app", 8500),
    "evaluator": ("services.evaluator.app", 8600),
    "inference": ("services.inference.app", 8000),  # its command has model options: cli/serve_inference.py
}

app = typer.Typer(help="Run one HTTP service under uvicorn.", no_args_is_help=True)


def service_module(name: str) -> Any:
    """The module of service ``name`` (:data:`SERVICES`), or a one-line exit."""
    if name not in SERVICES:
        raise fail(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")
    return import_services_module(SERVICES[name][0], f"the {name} service")


def import_services_module(module: str, what: str) -> Any:
    """``services.<...>`` imported from the installed path, else from the checkout ``giqa`` runs from."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in ("services", module.rsplit(".", 1)[0], module):
            raise fail(f"{what} needs a package that is not installed: {exc.name}") from exc
    checkout = Path(__file__).resolve().parents[3]  # shared/giqa/cli/serve.py -> the checkout
    if not (checkout / "services" / "__init__.py").is_file():
        raise fail(f"cannot find the services package ({module}): run from a checkout of the project")
    sys.path.insert(0, str(checkout))
    return importlib.import_module(module)


def serve(name: str, host: str | None, port: int, log_level: str, settings: Any = None) -> None:
    """Load service ``name``'s backend from ``settings`` (default: the environment's), then serve it."""
    from giqa.settings import get_settings

    try:
        import uvicorn
    except ModuleNotFoundError:
        raise fail("uvicorn is not installed: pip install 'giqa[services]'") from None
    module = service_module(name)
    settings = settings or get_settings()
    # the backend is loaded before the port opens, so a bad configuration (a model folder that is not
    # there, a judge without its model) ends here in one line instead of in uvicorn's startup traceback
    try:
        backend = module.load_backend(settings)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise fail(f"cannot start the {name} service: {exc}") from exc
    service_app = module.create_app_from_settings(settings, backend=backend)
    uvicorn.run(
        service_app,
        host=host or settings.service.host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )


Host = Annotated[str | None, typer.Option("--host", help="address to bind (default: service.host)")]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="port to bind (0: a free one)")]
LogLevel = Annotated[str, typer.Option("--log-level", help="uvicorn log level")]


def _command(name: str, default_port: int) -> None:
    def command(host: Host = None, port: Port = default_port, log_level: LogLevel = "info") -> None:
        serve(name, host, port, log_level)

    command.__doc__ = f"Run the {name} service (see services/{name}/app.py); stops on Ctrl-C / SIGTERM."
    app.command(name)(command)


for _name, (_module, _port) in SERVICES.items():
    if _name != "inference":
        _command(_name, _port)


def _inference_command() -> None:
    from giqa.cli.serve_inference import inference

    app.command("inference")(inference)


_inference_command()
