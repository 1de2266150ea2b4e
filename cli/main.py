"""The `aucues` console script. Each command group lives in its own module and registers itself
here; heavy imports happen inside the commands so `aucues --help` stays fast."""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="aucues",
    help="Interpretable facial expression recognition guided by Action Unit cues: "
    "landmarks, AU maps, train, evaluate, export, serve, predict, bench, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Modules with a `register(app)` function, in the order of `aucues --help`.
COMMAND_MODULES = (
    "aucues.cli.doctor", "aucues.cli.faces", "aucues.cli.aus", "aucues.cli.data", "aucues.cli.train_cmd", "aucues.cli.evaluate_cmd",
    "aucues.cli.export_cmd", "aucues.cli.serve_cmd", "aucues.cli.bench_cmd", "aucues.cli.demo_cmd",
    "aucues.cli.import_reference", "aucues.cli.import_fer",  # each joins the `import` group or creates it
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """A global `--debug` (before the command) or AUCUES_DEBUG=1: show the traceback behind an error."""
    import os

    debug = os.environ.get("AUCUES_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    rest, i = [], 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] == "--debug":
            debug = True
        else:
            rest.append(argv[i])
        i += 1
    return debug, rest + argv[i:]


# import name -> what to install, for the one-line error on a partial install (a GPU host's image with
# its own torch, a venv made by hand): `aucues doctor` lists every component.
_PIP_NAMES = {"cv2": "opencv-contrib-python", "yaml": "pyyaml", "skimage": "scikit-image",
              "tritonclient": "tritonclient[all]", "pytriton": "nvidia-pytriton", "tensorrt": "aucues[gpu]"}


def missing_package_message(e: ModuleNotFoundError) -> str:
    top = (e.name or str(e)).split(".")[0]
    return (f"the Python package '{top}' is not installed (needed here); run `make setup` or "
            f"`pip install {_PIP_NAMES.get(top, top)}`; `aucues doctor` lists what is missing")


def _fail(message: str, debug: bool) -> None:
    """The one `error:` line and exit 1 (the traceback above it only with --debug)."""
    from rich.markup import escape

    from aucues.cli.common import err_console

    if debug:
        import traceback

        traceback.print_exc(file=sys.stderr)
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and a non-zero exit, never a traceback (unless
    `aucues --debug ...` or AUCUES_DEBUG=1, which print it above the line)."""
    from aucues.errors import AucuesError
    from aucues.cli.common import err_console

    debug, argv = _debug_requested(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=argv, prog_name="aucues")
    except AucuesError as e:
        _fail(str(e), debug)
    except ModuleNotFoundError as e:  # a dependency absent from this install: one line, not a traceback
        _fail(missing_package_message(e), debug)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
