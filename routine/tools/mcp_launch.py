"""Process entry point: an MCP server run as our child's child, so its exit status is known.

``python .../routine/tools/mcp_launch.py STATUS_FILE COMMAND [ARGS...]`` (by its path: the
standard library only, so it runs where the package is not installed) runs the server with
this process's stdin and stdout (the MCP SDK's pipes) and, when it ends, writes its exit
status — or why it could not start — to STATUS_FILE, then exits the same way. Its stderr
is passed on as it comes, and its end is kept: the status file's lines after the first
are the last it wrote (a server that exits at start says why there, which a notebook or a
service's caller would not see on a terminal). The SDK keeps the process it starts to
itself; :mod:`routine.tools.mcp` reads the file to say "exited with status 3: why"
instead of only "exited". Not a public API.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

TAIL_BYTES = 2000  # the end of the server's stderr kept for the status file


def _relay(source: object, tail: bytearray) -> None:
    """Copy the server's stderr to ours as it comes, keeping its last TAIL_BYTES."""
    out = getattr(sys.stderr, "buffer", None)
    for chunk in iter(lambda: source.read1(4096), b""):  # type: ignore[attr-defined]
        tail += chunk
        del tail[:-TAIL_BYTES]
        try:
            if out is not None:
                out.write(chunk)
                out.flush()
        except (OSError, ValueError):  # our stderr closed: the tail is still kept
            out = None


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
        process = subprocess.Popen(command, stderr=subprocess.PIPE)
    except OSError as exc:
        _record(status_file, f"cannot start: {exc.strerror or exc}")
        return 127
    tail = bytearray()
    relay = threading.Thread(target=_relay, args=(process.stderr, tail), daemon=True)
    relay.start()

    def forward(signum: int, frame: object) -> None:  # the SDK stops "the server": us
        process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    code = process.wait()
    relay.join(timeout=1)  # (a process the server started may hold its stderr open)
    said = bytes(tail).decode("utf-8", "replace")
    _record(status_file, (f"exit status {code}" if code >= 0 else f"killed by signal {-code}")
            + "\n" + said)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
