"""`aucues data ...`: dataset commands (synth, prepare). Sub-modules add their commands to `data_app`."""

from __future__ import annotations

import importlib

import typer

data_app = typer.Typer(help="Datasets: synthesize the AU benchmark, prepare RAF-DB/AffectNet.", no_args_is_help=True)

for _name in ("aucues.cli.data_synth", "aucues.cli.data_prepare"):
    importlib.import_module(_name).register(data_app)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
