"""aucues command line: thin typer commands over the library stages."""

if __name__ != "aucues.cli":  # the folder is installed as aucues.cli; never as a top-level `cli`
    raise ImportError("the cli/ folder is the aucues.cli package: `import aucues.cli` "
                      "(installed by `pip install -e .` or the aucues wheel)")

