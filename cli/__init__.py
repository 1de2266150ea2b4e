"""aucues command line: thin typer commands over the library stages."""
