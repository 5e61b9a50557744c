"""The ``routine`` command (one entry point, ``main(argv) -> int``)."""

from .app import app, main

__all__ = ["app", "main"]
