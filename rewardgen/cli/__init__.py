"""The command line: a thin shell over the library (``rewardgen --help``)."""

from rewardgen.cli.main import main

__all__ = ["main"]
