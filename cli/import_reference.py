"""`aucues import reference EXP_DIR --out MODEL.pt` (one released model of the paper) and
`aucues import reference --dir ROOT --out FOLDER` (every model of a shared-trained-models tree):
aucues.train.reference_import / reference_tree. Joins the `import` group when another module made
it, else creates it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def add_reference_command(group: typer.Typer) -> None:
    @group.command("reference")
    def reference(
        exp_dir: Optional[Path] = typer.Argument(None, help="A released model folder (config_model.yaml + model.pt)."),
        out: Path = typer.Option(..., "--out", help="Checkpoint to write (.pt); with --dir, a folder."),
        tree: Optional[Path] = typer.Option(None, "--dir", help="Import every model folder under this "
                                            "shared-trained-models / FG_FER tree."),
    ) -> None:
        """Import the paper's released models (reference implementation) as aucues checkpoints."""
        from aucues.errors import AucuesError

        if (exp_dir is None) == (tree is None):
            raise AucuesError("give one released model folder (EXP_DIR) or --dir ROOT, not both")
        if tree is not None:
            _import_tree(tree, out)
            return
        from aucues.cli.common import console
        from aucues.train.reference_import import import_reference

        r = import_reference(exp_dir, out)
        console.print(f"wrote {r['out']}: {r['dataset']} {r['encoder']} {r['method']} "
                      f"({'with' if r['au_loss'] else 'without'} AU loss"
                      + (f", layers {r['au_layers']} lambda {r['au_lambda']:g}" if r["au_loss"] else "")
                      + f"), {r['image_size']}px, {r['parameters']} parameters, codebook reference; "
                      f"read its CAMs with {r['cam_method']}", highlight=False, soft_wrap=True)


def _import_tree(root: Path, out: Path) -> None:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from aucues.cli.common import console
    from aucues.train.reference_tree import find_model_folders, import_tree

    total = len(find_model_folders(root))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("importing", total=total)
        seen = []

        def step(folder):
            if seen:
                bar.advance(task)
            seen.append(folder)
            bar.update(task, description=f"importing {folder.name}")

        rows = import_tree(root, out, on_step=step)
    t = Table(title=f"{len(rows)} models under {root}")
    for col in ("dataset", "method", "AU loss", "status"):
        t.add_column(col)
    for r in rows:
        au = "?" if r["au_loss"] is None else "yes" if r["au_loss"] else "no"
        f = r["folder"]  # the row names the model: drop its long path from the message
        err = (r["error"] or "").replace(f + ": ", "").replace(f + "/", "").replace(f, ".")
        status = f"[green]ok[/] {escape(Path(r['out']).name)}" if r["ok"] else f"[red]failed:[/] {escape(err)}"
        t.add_row(escape(str(r["dataset"])), escape(str(r["method"])), au, status)
    console.print(t)
    failed = sum(not r["ok"] for r in rows)
    console.print(f"{len(rows) - failed} imported, {failed} failed (into {out})", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from aucues.cli.common import import_group

    add_reference_command(import_group(app))
