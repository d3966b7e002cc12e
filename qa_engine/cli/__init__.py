"""The `qa-engine` command and its runtime subcommands."""
from .main import main

__all__ = ["main"]
