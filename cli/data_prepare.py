"""`aucues data prepare rafdb --root DIR`: crop, landmark and align RAF-DB once (train.data.prepare);
`prepare affectnet|folder --root DIR` fills their landmark cache."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(data_app: typer.Typer) -> None:
    data_app.command("prepare")(prepare_cmd)


def prepare_cmd(
    dataset: str = typer.Argument(..., help="rafdb (crop + align + landmarks) | affectnet | folder (landmarks)."),
    root: Path = typer.Option(..., "--root", help="Dataset root folder."),
    size: int = typer.Option(224, "--size", help="Side of the aligned faces (rafdb)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images (rafdb)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    refresh: bool = typer.Option(False, "--refresh", help="Landmark every image again when the cache was made "
                                 "by another landmark source (e.g. an older 468 -> 68 mapping)."),
) -> None:
    """Prepare a dataset for training: aligned faces and their 68-point landmark cache."""
    from aucues.errors import AucuesError
    from aucues.cli.common import console
    from aucues.train.data.prepare import prepare

    if limit is not None and limit < 1:
        raise AucuesError(f"--limit must be >= 1, got {limit}")
    s = prepare(dataset, root, size=size, limit=limit, progress=not quiet, refresh=refresh)
    if s.get("refreshed"):
        console.print(f"cleared {s['refreshed']} cached entries of another landmark source; all redone",
                      highlight=False)
    console.print(f"{dataset} at {root}: {s['total']} images, {s['processed']} processed now, "
                  f"{s['skipped']} already done; faces {s['faces']}, no face {s['missing']}, "
                  f"bad images skipped {s['errors']}"
                  + (f", other files ignored {s['ignored']}" if s.get("ignored") else "")
                  + f"; landmarks: {s['cache']}", highlight=False, soft_wrap=True)
    examples = s.get("error_examples", [])
    for e in examples[:3]:
        console.print(f"  [yellow]skipped:[/] {e}", highlight=False, soft_wrap=True)
    if s["errors"] > 3:
        console.print(f"  ... and {s['errors'] - 3} more skipped", highlight=False)
