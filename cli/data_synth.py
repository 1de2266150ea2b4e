"""`aucues data synth`: write the synthetic AU benchmark (RAF-DB layout) and optionally a contact sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(data_app: typer.Typer) -> None:
    data_app.command("synth")(synth)


def synth(
    out: Path = typer.Option(..., "--out", help="Output directory (new, empty, or a previous synth output with --force)."),
    per_class: int = typer.Option(200, "--per-class", help="Images per class over train + test."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed and options give the same bytes."),
    image_size: int = typer.Option(128, "--image-size", help="Image side in pixels."),
    distractor_share: float = typer.Option(0.9, "--distractor-share", help="Share of train images whose distractor shows the true class."),
    test_share: float = typer.Option(0.25, "--test-share", help="Share of each class put in the test split."),
    test_distractor_share: Optional[float] = typer.Option(None, "--test-distractor-share", help="Distractor share of the test split (default: as train)."),
    no_distractors: bool = typer.Option(False, "--no-distractors", help="Draw no distractor at all."),
    force: bool = typer.Option(False, "--force", help="Overwrite a previous synth output in --out."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Also write a contact sheet PNG here."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Synthesize the AU benchmark: 7 expressions drawn from their Action Units, known landmarks,
    and a class-correlated distractor outside every AU region."""
    from rich.table import Table

    from aucues.labels import CLASS_NAMES
    from aucues.synth import preview_grid, synthesize
    from aucues.cli.common import console, fail

    if per_class < 1:
        fail(f"--per-class must be >= 1, got {per_class}")
    for name, v in (("--distractor-share", distractor_share), ("--test-share", test_share),
                    ("--test-distractor-share", test_distractor_share)):
        if v is not None and not 0.0 <= v <= 1.0:
            fail(f"{name} must be in [0, 1], got {v}")
    summary = synthesize(out, per_class=per_class, seed=seed, image_size=image_size,
                         distractor_share=distractor_share, test_share=test_share,
                         test_distractor_share=test_distractor_share, distractors=not no_distractors,
                         force=force, progress=not quiet)
    table = Table(title=f"synthetic AU benchmark -> {out}")
    table.add_column("class")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    for c in CLASS_NAMES:
        table.add_row(c, str(summary["counts"]["train"][c]), str(summary["counts"]["test"][c]))
    table.add_row("all", str(summary["train"]), str(summary["test"]), style="bold")
    console.print(table)
    share = summary["distractor_true_share"]
    console.print(f"distractor shows the true class: train {share['train']}, test {share['test']}; "
                  f"{summary['images']} images at {summary['image_size']} px in {summary['seconds']} s "
                  f"({summary['images_per_s']} images/s); seed {summary['seed']}")
    if preview is not None:
        console.print(f"preview: {preview_grid(out, preview)}")
