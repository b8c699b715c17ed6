"""The ``iclmeta`` command line: thin subcommands over the library."""
from iclmeta.cli.main import main

__all__ = ["main"]
