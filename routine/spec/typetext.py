"""JSON schemas as short type text, the way ``routine tools`` lists a tool and the way
``routine draft`` shows the tools to a model: ``integer``, ``list[Employee]``,
``"annual" | "sick"``, and the fields of what a tool returns."""

from __future__ import annotations

import json
from typing import Any

from .validate import _resolve

__all__ = ["type_text", "object_fields", "output_fields"]


def type_text(schema: Any, root: dict[str, Any], depth: int = 0) -> str:
    """A JSON schema as a short type: ``integer``, ``string | null``, ``list[Employee]``,
    ``dict[str, number]``, ``"annual" | "sick"``, ``{a: integer, b?: string}``."""
    if not isinstance(schema, dict) or depth > 6:
        return "any"
    if "$ref" in schema:
        target = _resolve(schema, root) or {}
        if "enum" in target or "const" in target:  # an Enum class: its values, as a Literal's
            return type_text(target, root, depth + 1)
        return str(target.get("title") or schema["$ref"].rsplit("/", 1)[-1])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(dict.fromkeys(type_text(s, root, depth + 1) for s in schema[key]))
    if "enum" in schema or "const" in schema:
        return " | ".join(json.dumps(v) for v in schema.get("enum", [schema.get("const")]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(map(str, kind))
    if kind == "array" and "prefixItems" in schema:
        return f"tuple[{', '.join(type_text(s, root, depth + 1) for s in schema['prefixItems'])}]"
    if kind == "array":
        return f"list[{type_text(schema.get('items'), root, depth + 1)}]"
    if "properties" in schema:
        return str(schema.get("title") or "{" + ", ".join(
            f"{name}{'' if required else '?'}: {text}"
            for name, text, required in object_fields(schema, root, depth + 1)) + "}")
    if isinstance(schema.get("additionalProperties"), dict):
        return f"dict[str, {type_text(schema['additionalProperties'], root, depth + 1)}]"
    if kind == "string" and schema.get("format"):
        return f"string ({schema['format']})"
    return str(kind or schema.get("title") or "any")


def object_fields(schema: dict[str, Any], root: dict[str, Any], depth: int = 0
                  ) -> list[tuple[str, str, bool]]:
    """(name, type, required) of an object schema's properties."""
    required = set(schema.get("required", []))
    return [(name, type_text(sub, root, depth), name in required)
            for name, sub in schema.get("properties", {}).items()]


def output_fields(schema: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    """The fields of what a tool returns: of the object, or of a list's items (a nullable
    result: of its object alternative)."""
    if not schema:
        return []
    current = _resolve(schema, schema) or {}
    if current.get("type") == "array":
        current = _resolve(current.get("items"), schema) or {}
    objects = [alt for alt in (_resolve(a, schema) or {} for a in current.get("anyOf", []))
               if "properties" in alt]
    if len(objects) == 1:
        current = objects[0]
    return object_fields(current, schema)

