"""The type vocabulary of tool declarations, shared by the client and the runner.

`corral.v1.ToolSpec.inputs_json` declares each argument with a JSON-schema
type name (the names smolagents tools use); the runner turns the same names
into the annotations of the stubs that snippets call. Standard library only:
this module is copied into the sandbox image.
"""

from __future__ import annotations

# JSON-schema type name -> the Python annotation shown in a tool stub's signature.
TYPE_TO_PY: dict[str, str] = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
    "any": "Any",
    "null": "None",
}

TYPES: frozenset[str] = frozenset(TYPE_TO_PY)
