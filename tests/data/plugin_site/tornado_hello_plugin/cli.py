"""``tornado hello``: a command group added through the ``tornado.commands`` door."""

from __future__ import annotations

import click


@click.group()
def hello() -> None:
    """Greetings from the hello plugin."""


@hello.command()
@click.option("--name", required=True, help="Who to greet.")
def greet(name: str) -> None:
    """Print a greeting."""
    click.echo(f"Olá, {name}!")
