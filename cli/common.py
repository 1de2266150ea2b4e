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


def import_group(app):
    """The `aucues import` command group: the one registered already, else a new one (each importer
    module adds its command to it, whatever the registration order)."""
    import typer

    for info in app.registered_groups:
        if info.name == "import" and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help="Import trained models from other projects as aucues checkpoints.",
                        no_args_is_help=True)
    app.add_typer(group, name="import")
    return group
