"""``routine init``: a working project in a folder, ready to validate, run, build and evaluate.

The files come from ``routine/cli/scaffold/``: the project file, a toolset module with two
typed tools over SQLite, a routine, gold data (``eval/helpdesk/domain.py``, two
templates) and a README. Existing files are never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..spec.format import routine_json_schema

__all__ = ["init_project", "SCAFFOLD"]

SCAFFOLD = Path(__file__).parent / "scaffold"
SCHEMA_FILE = "routines/routine.schema.json"


def _files() -> dict[str, str]:
    """Relative path -> text of every file the project starts with."""
    files = {str(p.relative_to(SCAFFOLD)): p.read_text(encoding="utf-8")
             for p in sorted(SCAFFOLD.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}
    files[SCHEMA_FILE] = json.dumps(routine_json_schema(), indent=2) + "\n"
    for name, text in files.items():  # editors complete and check routines with the schema
        if name.startswith("routines/") and name.endswith(".yaml"):
            files[name] = "# yaml-language-server: $schema=routine.schema.json\n" + text
    return files


def init_project(folder: str | Path, force: bool = False) -> list[Path]:
    """Write the starter project into ``folder`` (created if needed); return the files.

    A file that already exists is a FileExistsError naming them all, unless ``force``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder (nothing was written; give "
                              "a new or existing folder)")
    files = _files()
    files["README.md"] = files["README.md"].replace("{name}", folder.resolve().name)
    clashes = [name for name in files if (folder / name).exists()]
    if clashes and not force:
        raise FileExistsError(f"{folder} already has {', '.join(sorted(clashes))} "
                              "(nothing was written; --force overwrites)")
    written = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
