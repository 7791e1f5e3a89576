"""What every ``giqa`` command shares: the one-line error, the exit codes, the URL check, the safety net.

Exit codes (the convention ``giqa judge`` set): 2 for bad input or usage (a missing or malformed file, an
output that cannot be written), 3 for a server that does not answer, 1 for a run that finished without a
usable result. Errors are one line on stderr, ``error: ...``; a traceback means a bug.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(code=code)


def check_url(value: str, option: str) -> str:
    """``value`` as an http(s) URL, or the exit: a URL option is checked before anything starts."""
    from giqa.settings import http_url

    try:
        return http_url(value)
    except ValueError as exc:
        raise fail(f"{option}: {exc}") from None


def url_option(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Typer callback for ``--...-url`` options: :func:`check_url`."""
    if value is None or ctx.resilient_parsing:
        return value
    return check_url(value, param.opts[0])


def _os_message(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


class SafetyNetGroup(TyperGroup):
    """The root command group: errors of the outside world that reach it become one line, not a traceback.

    Commands report the errors they expect themselves; this catches the rest of the same kinds (a disk
    that fills, a folder that turns read-only, a server that goes away mid-run). Anything else propagates,
    as it is a bug.
    """

    def invoke(self, ctx: Any) -> Any:  # click.Context; typer vendors click privately
        from giqa.backends.errors import RemoteBackendError
        from giqa.files import InputFileError, OutputPathError
        from giqa.llm.errors import LLMUnavailableError
        from giqa.settings import SettingsError

        try:
            return super().invoke(ctx)
        except RemoteBackendError as exc:
            raise fail(str(exc), EXIT_UNAVAILABLE if exc.retryable else EXIT_BAD_INPUT) from exc
        except LLMUnavailableError as exc:
            raise fail(f"the server does not answer: {exc}", EXIT_UNAVAILABLE) from exc
        except ConnectionError as exc:
            if type(exc) is not ConnectionError:  # a broken pipe or reset is not a server that is down
                raise fail(_os_message(exc)) from exc
            raise fail(f"the server does not answer: {exc}", EXIT_UNAVAILABLE) from exc
        except (InputFileError, OutputPathError, SettingsError) as exc:
            raise fail(str(exc)) from exc
        except OSError as exc:
            raise fail(_os_message(exc)) from exc
