"""Shared CLI helpers: one console, one-line errors."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str, code: int = 1):
    """Print one red line and exit with `code` (never a traceback)."""
    import typer

    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
