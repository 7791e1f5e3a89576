"""``giqa db``: the run database's schema (Alembic migrations, the same for Postgres and embedded SQLite)."""

from __future__ import annotations

import typer

from giqa.cli.common import EXIT_UNAVAILABLE, fail

app = typer.Typer(help="The run database: apply and inspect schema migrations.", no_args_is_help=True)

URL_HELP = "database URL (postgresql+psycopg://... or sqlite:///...); default: settings db.url, else embedded"


def _url(url: str | None) -> str:
    from giqa.settings import DatabaseSettings, database_url, get_settings

    if url is None:
        return database_url(get_settings())
    from pydantic import ValidationError

    try:
        return DatabaseSettings(url=url).url or url
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise fail(f"--url: {message}") from None


def _unavailable(url: str, exc: Exception) -> typer.Exit:
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return fail(f"cannot use the database at {shown}: {reason}", EXIT_UNAVAILABLE)


@app.command("upgrade")
def upgrade(
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    revision: str = typer.Option("head", help="the revision to reach"),
) -> None:
    """Apply the migrations the database lacks (a database already at the revision is left alone)."""
    from sqlalchemy.exc import SQLAlchemyError

    from giqa.infra.db import migrate

    target = _url(url)
    try:
        migrate.upgrade(target, revision)
        now = migrate.current(target)
    except SQLAlchemyError as exc:
        raise _unavailable(target, exc) from exc
    typer.echo(f"database at revision {now}")


@app.command("current")
def current(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Print the database's revision (``none`` if never migrated) and whether it is the newest."""
    from sqlalchemy.exc import SQLAlchemyError

    from giqa.infra.db import migrate

    target = _url(url)
    try:
        now = migrate.current(target)
    except SQLAlchemyError as exc:
        raise _unavailable(target, exc) from exc
    head = migrate.head()
    typer.echo(
        f"{now or 'none'} ({'up to date' if now == head else f'newest is {head}: run giqa db upgrade'})"
    )
