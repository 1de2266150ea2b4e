"""`aucues doctor`: what is installed and usable."""

from __future__ import annotations

import json

import typer


def doctor(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Report torch/CUDA, ONNX Runtime providers, TensorRT, tritonserver and MediaPipe models."""
    from rich.markup import escape
    from rich.table import Table

    from aucues.environment import collect
    from aucues.cli.common import console

    report = collect()
    if json_out:
        print(json.dumps(report, indent=1))
    else:
        table = Table(title=f"aucues {report['aucues']} on Python {report['python']} ({report['cpu_count']} CPUs)")
        for col in ("component", "status", "detail"):
            table.add_column(col)
        for c in report["checks"]:
            status = "[green]ok[/]" if c["ok"] else ("[red]missing[/]" if c["required"] else "[yellow]n/a[/]")
            table.add_row(c["name"], status, escape(c["detail"]))
        console.print(table)
        console.print("[green]ready[/]" if report["ok"] else "[red]a required component is missing[/]")
    if not report["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
