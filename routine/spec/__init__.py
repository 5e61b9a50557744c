"""The routine as data: the YAML format, its control flow, and the checks against tools.

* :mod:`.format` — the pydantic format and its JSON Schema;
* :mod:`.references` — argument sources (``${inputs.x}``, ``${steps.id.output.f}``);
* :mod:`.loader` — reading files: safe YAML, the position of every node, one error for all;
* :mod:`.flow` — steps as a graph (successors, reachability, dominators);
* :mod:`.validate` — every check of a routine against its tools' schemas;
* :mod:`.toolsets` — resolving a routine's ``toolsets`` entries into a registry.
"""

from .flow import Flow
from .format import BranchOption, InputSpec, Routine, Step, routine_json_schema
from .loader import LoadedRoutine, SourceMap, load_routine, load_routine_text
from .references import Reference, parse_references
from .toolsets import import_toolsets, registry_for
from .validate import check_routine

__all__ = ["BranchOption", "Flow", "InputSpec", "LoadedRoutine", "Reference", "Routine",
           "SourceMap", "Step", "check_routine", "import_toolsets", "load_routine",
           "load_routine_text", "parse_references", "registry_for", "routine_json_schema"]
