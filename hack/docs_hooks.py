"""MkDocs hooks: the reference pages, generated when the site is built (`make docs`).

A page asks for a generated part with a marker on a line of its own:

    <!-- kabin:settings OperatorSettings -->      a table of the class's KABIN_* variables
    <!-- kabin:crd sessions.kabin.dev.yaml -->    the fields of a kind, from crds/

The settings tables come from the pydantic settings classes in `kabin.settings` (their
fields' names, defaults and descriptions); the API reference comes from the CRDs, which
`make crds` generates from the pydantic models, so the site, `kubectl explain` and the
code say the same. An unknown marker fails the build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from kabin import settings as kabin_settings

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
SETTINGS_CLASSES = ("OperatorSettings", "AgentSettings", "GatewaySettings")

MARKER = re.compile(r"^<!-- kabin:(?P<what>[a-z]+) (?P<arg>\S+) -->$", re.MULTILINE)
# Kubernetes' resource.Quantity pattern, as the CRDs carry it: shown as "quantity".
QUANTITY_PATTERN_START = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each marker of a page with what it names."""
    return MARKER.sub(lambda m: generate(m["what"], m["arg"]), markdown)


def generate(what: str, arg: str) -> str:
    """The Markdown a marker stands for."""
    if what == "settings":
        if arg not in SETTINGS_CLASSES:
            raise ValueError(f"kabin:settings {arg}: not one of {', '.join(SETTINGS_CLASSES)}")
        return settings_table(getattr(kabin_settings, arg))
    if what == "crd":
        return crd_reference(CRDS / arg)
    raise ValueError(f"unknown marker kabin:{what}")


# Settings


def settings_table(cls: type[BaseSettings]) -> str:
    """A table of the environment variables of a settings class: variable, default,
    description (with its limits)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    rows = ["| variable | default | description |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
        variables = ", ".join(f"`{v}`" for v in env_names(prefix, name, field))
        description = (field.description or "").strip()
        limits = field_limits(field)
        if limits:
            description += f" Allowed: {limits}."
        rows.append(f"| {variables} | {format_default(field)} | {cell(description)} |")
    return "\n".join(rows) + "\n"


def env_names(prefix: str, name: str, field: FieldInfo) -> list[str]:
    """The variables a field is read from: its aliases when it has them, else the
    prefixed name."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    if isinstance(alias, str):
        return [alias]
    return [f"{prefix}{name}".upper()]


def format_default(field: FieldInfo) -> str:
    """A field's default as it would be written in its variable."""
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if value == "":
        return '`""`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple | list | dict):
        return cell(f"`{json.dumps(value)}`")
    return cell(f"`{value}`")


def field_limits(field: FieldInfo) -> str:
    """The bounds and pattern pydantic checks, in words."""
    words = []
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            words.append(f"≥ {meta.ge}")
        elif isinstance(meta, annotated_types.Gt):
            words.append(f"> {meta.gt}")
        elif isinstance(meta, annotated_types.Le):
            words.append(f"≤ {meta.le}")
        elif isinstance(meta, annotated_types.Lt):
            words.append(f"< {meta.lt}")
        elif getattr(meta, "pattern", None):
            words.append(f"matches `{meta.pattern}`")
    return ", ".join(words)


# The API, from the CRDs


def crd_reference(path: Path) -> str:
    """The reference of one kind: what it is, a table of its fields, its printer columns."""
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]
    names = spec["names"]
    parts = []
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        short = ", ".join(f"`{n}`" for n in names.get("shortNames", []))
        categories = ", ".join(f"`{c}`" for c in names.get("categories", []))
        subresources = ", ".join(f"`{s}`" for s in version.get("subresources", {}))
        facts = [
            f"`apiVersion: {spec['group']}/{version['name']}`",
            f"`kind: {names['kind']}`",
            "namespaced" if spec["scope"] == "Namespaced" else "cluster-scoped",
            f"plural `{names['plural']}`",
        ]
        if short:
            facts.append(f"short names {short}")
        if categories:
            facts.append(f"categories {categories}")
        if subresources:
            facts.append(f"subresources {subresources}")
        parts.append(cell(schema.get("description", "")) + "\n")
        parts.append(", ".join(facts) + ".\n")
        parts.append(f"`kubectl explain {names['singular']}.spec` shows the same text.\n")
        parts.append(fields_table(schema))
        columns = version.get("additionalPrinterColumns", [])
        if columns:
            parts.append(f"**Columns of `kubectl get {names['plural']}`:**\n")
            parts.append(printer_columns(columns))
    return "\n".join(parts)


def fields_table(schema: dict[str, Any]) -> str:
    """One row per field under spec and status, parents before their children."""
    rules = dict(validation_rules(schema, ""))
    rows = ["| field | type | description | constraints |", "|---|---|---|---|"]
    for path, field, required in walk(schema, ""):
        if path in ("apiVersion", "kind", "metadata"):
            continue
        constraints = field_constraints(field, required) + rules.get(path, [])
        rows.append(
            f"| `{path}` | {field_type(field)} | {cell(field.get('description', ''))} "
            f"| {cell('; '.join(constraints))} |"
        )
    return "\n".join(rows) + "\n"


def walk(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, schema, required) of every property below `schema`, depth first."""
    required = set(schema.get("required", []))
    for name, field in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, field, name in required
        yield from walk(field, path)
        items = field.get("items", {})
        if "properties" in items:
            yield from walk(items, f"{path}[]")


def validation_rules(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, list[str]]]:
    """CEL rules (x-kubernetes-validations) by the path of the field they judge."""
    found: dict[str, list[str]] = {}
    for path, field in [(prefix, schema), *((p, f) for p, f, _ in walk(schema, prefix))]:
        for rule in field.get("x-kubernetes-validations", []):
            target = path + rule.get("fieldPath", "") if path else rule.get("fieldPath", "")[1:]
            message = rule.get("message") or rule_message(rule)
            found.setdefault(target, []).append(f"rule: {message}")
    yield from found.items()


def rule_message(rule: dict[str, Any]) -> str:
    """A rule's message when it is an expression: its leading text, else the rule."""
    leading = re.match(r"'([^']+)'", rule.get("messageExpression", ""))
    if leading:
        return leading[1].rstrip(": ") + " …"
    return f"`{rule['rule']}` must hold"


def field_type(field: dict[str, Any]) -> str:
    """The field's type in kubectl explain's words."""
    if field.get("x-kubernetes-int-or-string"):
        if str(field.get("pattern", "")).startswith(QUANTITY_PATTERN_START):
            return "quantity"
        return "integer or string"
    kind = str(field.get("type", "object"))
    if kind == "array":
        return "[]" + field_type(field.get("items", {}))
    if kind == "object" and isinstance(field.get("additionalProperties"), dict):
        return "map[string]" + field_type(field["additionalProperties"])
    if "format" in field:
        return f"{kind} ({field['format']})"
    return kind


def field_constraints(field: dict[str, Any], required: bool) -> list[str]:
    """Required, default, enum, bounds and pattern of a field (and of its items)."""
    out = ["required"] if required else []
    if "default" in field:
        out.append(f"default `{json.dumps(field['default'])}`")
    for source, label in ((field, ""), (field.get("items", {}), "items ")):
        if "enum" in source:
            out.append(f"{label}one of " + ", ".join(f"`{v}`" for v in source["enum"]))
    bounds = (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
    )
    out.extend(f"{word} {field[key]}" for key, word in bounds if key in field)
    pattern = field.get("pattern")
    if pattern and not str(pattern).startswith(QUANTITY_PATTERN_START):
        out.append(f"matches `{pattern}`")
    keys = field.get("x-kubernetes-list-map-keys")
    if keys:
        out.append("a list keyed by " + ", ".join(f"`{k}`" for k in keys))
    if field.get("x-kubernetes-preserve-unknown-fields"):
        out.append("not checked by the schema")
    elif field.get("items", {}).get("x-kubernetes-preserve-unknown-fields"):
        out.append("items not checked by the schema")
    return out


def printer_columns(columns: list[dict[str, Any]]) -> str:
    rows = ["| column | type | JSONPath |", "|---|---|---|"]
    for column in columns:
        path = cell(f"`{column['jsonPath']}`")
        rows.append(f"| {column['name']} | {column['type']} | {path} |")
    return "\n".join(rows) + "\n"


# Markdown


def cell(text: str) -> str:
    """Text made safe in a table cell: one line, and outside code spans pipes and angle
    brackets escaped (so `<host>` is not taken for HTML). Python-Markdown's tables leave
    pipes inside code spans alone."""
    text = " ".join(str(text).split())
    pieces = []
    last = 0
    for span in CODE_SPAN.finditer(text):
        pieces.append(_escape(text[last : span.start()]))
        pieces.append(span.group(0))
        last = span.end()
    pieces.append(_escape(text[last:]))
    return "".join(pieces)


def _escape(text: str) -> str:
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", r"\|")):
        text = text.replace(char, escaped)
    return text
