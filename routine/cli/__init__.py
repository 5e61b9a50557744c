"""The ``routine`` command (one entry point, ``main(argv) -> int``)."""

from .commands import app, main

__all__ = ["app", "main"]
