"""Workflow configuration: JSON-Schema validation with defaults, readable errors, documentation."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from nucflow.errors import InputError
from nucflow.train.presets import apply_training_presets


def _with_defaults(validator_class: type) -> type:
    """Extend a validator class so that validating an object also fills in schema defaults."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML JSON-Schema file."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def _location(error: ValidationError) -> str:
    """Dotted key path of an error, e.g. ``experiments.demo.model.channels``."""
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error: ValidationError) -> str:
    """One line describing a validation error, naming the experiment and key."""
    where = _location(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"{where}: unknown key {', '.join(map(repr, extra))}{hint}"
    if error.validator == "oneOf" and error.context:
        error = min(error.context, key=lambda e: len(list(e.absolute_path)))
    return f"{where}: {error.message}"


def validate_config(
    config: dict[str, Any], schema: Mapping[str, Any], source: str = "config"
) -> dict[str, Any]:
    """Validate ``config`` in place against ``schema``, filling defaults; return it.

    Training presets (``training.preset``) are expanded first, so their values act as
    defaults that explicit keys override.

    Raises :class:`InputError` listing every problem, each naming the key path
    (``experiments.<name>.<section>.<key>``).
    """
    apply_training_presets(config)
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        problems = "; ".join(_describe(error) for error in errors)
        raise InputError(f"{source}: invalid configuration: {problems}")
    return config


def load_config(
    path: str | os.PathLike[str], schema_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Read a YAML config file and validate it (with defaults) against the schema."""
    config_path = Path(path)
    if not config_path.is_file():
        raise InputError(f"{config_path}: config file not found")
    with open(config_path) as handle:
        config = yaml.safe_load(handle) or {}
    return validate_config(config, load_schema(schema_path), source=str(config_path))


def sequence_experiment(schema_path: str | os.PathLike[str], **sections: Any) -> dict[str, Any]:
    """A validated ``kind: sequence`` experiment with every default filled in.

    ``sections`` (e.g. ``model={...}``) override parts of it; the class FASTA paths are
    placeholders. Meant for tests, benchmarks and notebooks that call steps directly.
    """
    experiment: dict[str, Any] = {
        "kind": "sequence",
        "data": {"classes": {"a": "a.fa", "b": "b.fa"}},
        **{name: dict(v) if isinstance(v, Mapping) else v for name, v in sections.items()},
    }
    config = validate_config({"experiments": {"e": experiment}}, load_schema(schema_path))
    return config["experiments"]["e"]


def _type_of(schema: Mapping[str, Any]) -> str:
    """Short human-readable type of a schema node."""
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "oneOf" in schema:
        return " or ".join(_type_of(option) for option in schema["oneOf"])
    kind = schema.get("type", "object" if "properties" in schema else "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and "items" in schema:
        return f"list of {_type_of(schema['items'])}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        value = schema["additionalProperties"]
        inner = "experiment" if "$ref" in value else _type_of(value)
        return f"map of name → {inner}"
    return str(kind)


def _rows(schema: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """Markdown table rows for every key below ``schema``."""
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        default = (
            f"`{json.dumps(sub['default'])}`"
            if ("default" in sub and not sub.get("properties"))
            else ""
        )
        text = " ".join(str(sub.get("description", "")).split())
        yield f"| `{key}` | {_type_of(sub)} | {default} | {text} |"
        if sub.get("properties"):
            yield from _rows(sub, f"{key}.")


def render_config_docs(schema: Mapping[str, Any]) -> str:
    """Render the schema as Markdown: one table row per key, with type, default and meaning."""
    header = "| key | type | default | meaning |\n|---|---|---|---|"
    parts = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by `make config-docs`; do not "
        "edit by hand (a test checks that the two agree). Every key is validated before any "
        "job runs: unknown keys and wrong types stop the workflow with a message naming the key.",
        "",
        " ".join(str(schema.get("description", "")).split()),
        "",
        "## Top level",
        "",
        header,
        *_rows(schema, ""),
    ]
    for name, definition in schema.get("$defs", {}).items():
        parts += [
            "",
            f"## Experiment (`experiments.<name>`), {name.replace('_', ' ')}",
            "",
            " ".join(str(definition.get("description", "")).split()),
            "",
            header,
            *_rows(definition, ""),
        ]
    return "\n".join(parts) + "\n"
