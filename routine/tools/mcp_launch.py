"""Process entry point: an MCP server run as our child's child, so its exit status is known.

``python .../routine/tools/mcp_launch.py STATUS_FILE COMMAND [ARGS...]`` (by its path: the
standard library only, so it runs where the package is not installed) runs the server with
this process's stdin, stdout and stderr (the MCP SDK's pipes) and, when it ends, writes
its exit status — or why it could not start — to STATUS_FILE, then exits the same way.
The SDK keeps the process it starts to itself; :mod:`routine.tools.mcp` reads the file to
say "exited with status 3" instead of only "exited". Not a public API.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def _record(status_file: Path, text: str) -> None:
    """Write the status; when the reader has gone (its folder removed as the process ends,
    a conversation still open at exit), there is nobody to tell: nothing is written."""
    try:
        status_file.write_text(text, encoding="utf-8")
    except OSError:
        pass


def main(argv: list[str]) -> int:
    status_file, command = Path(argv[0]), argv[1:]
    try:
        process = subprocess.Popen(command)
    except OSError as exc:
        _record(status_file, f"cannot start: {exc.strerror or exc}")
        return 127

    def forward(signum: int, frame: object) -> None:  # the SDK stops "the server": us
        process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    code = process.wait()
    _record(status_file, f"exit status {code}" if code >= 0 else f"killed by signal {-code}")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
