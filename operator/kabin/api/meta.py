"""Pieces shared by kabin's three kinds: the base model, quantities, conditions.

Every model here is the API: `make crds` turns them into the CRD schemas, and
the client validates with the same models, so both report the same field
names. Field names are camelCase on the wire (aliases) and snake_case in Python.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "kabin.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "kabin"


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# Kubernetes' own quantity grammar (resource.Quantity), as kubebuilder emits it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(value: int | float | str) -> Decimal:
    """The numeric value of a Kubernetes quantity ("500m" -> 0.5, "1Gi" -> 1073741824).

    Raises ValueError for anything the API server would refuse.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = value.strip()
    if not _QUANTITY.match(text):
        raise ValueError(f"{value!r} is not a quantity (such as 2, 500m, 4Gi)")
    number = re.match(r"^[+-]?(\d+\.?\d*|\.\d+)", text)
    assert number is not None  # the grammar above guarantees a leading number
    suffix = text[number.end() :]
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(text)
        return Decimal(number.group(0)) * _SUFFIXES[suffix]
    except (KeyError, InvalidOperation) as e:
        raise ValueError(f"{value!r} is not a quantity") from e


def _check_quantity(value: int | str) -> int | str:
    parse_quantity(value)
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes quantity: an integer or a string such as "500m", "4Gi"."""

SizeQuantity = Annotated[
    str,
    Field(pattern=QUANTITY_PATTERN),  # before the validator, or pydantic drops it from the schema
    AfterValidator(_check_quantity),
]
"""A storage size as a quantity string, such as "10Gi"."""

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
"""The name of another object: a DNS subdomain."""

Seconds = Annotated[int, Field(ge=-1)]
"""A duration in seconds; -1 means none (no timeout, no cap)."""


def preserved(description: str, *, kind: Literal["object", "array"] = "object") -> Any:
    """A deliberate leaf of the schema holding a Kubernetes type (a Toleration, a
    Volume): the API server keeps it as given, and the pod it lands in is validated
    by the API server when the operator creates it."""
    schema: dict[str, Any]
    if kind == "array":
        schema = {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "description": description,
        }
    else:
        schema = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": description,
        }
    return WithJsonSchema(schema)


class EnvVar(Model):
    """An environment variable set in the session's containers."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")]
    """Name of the variable."""
    value: str = ""
    """Value of the variable."""


class Condition(Model):
    """One aspect of the object's state, as the Kubernetes API conventions define it."""

    type: Annotated[str, Field(max_length=316)]
    """Type of the condition in CamelCase, such as Ready or DriveReady."""
    status: Literal["True", "False", "Unknown"]
    """Status of the condition: True, False or Unknown."""
    reason: Annotated[str, Field(max_length=1024)] = ""
    """Machine-readable CamelCase reason for the last transition."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """Human-readable details of the last transition."""
    last_transition_time: datetime | None = None
    """When the status last changed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The .metadata.generation the condition was computed from."""


# Lists keyed like maps: apply and strategic merge merge them item by item.
LIST_MAP_BY_NAME: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}
LIST_MAP_BY_TYPE: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


def immutable(field: str, kind: str) -> dict[str, str]:
    """A CEL transition rule on a spec: `field` can be neither changed, added nor removed."""
    return {
        "rule": f"has(self.{field}) == has(oldSelf.{field}) "
        f"&& (!has(self.{field}) || self.{field} == oldSelf.{field})",
        "message": f"is immutable once the {kind} is created",
        "fieldPath": f".{field}",
        "reason": "FieldValueForbidden",
    }


def cel(*rules: dict[str, str]) -> ConfigDict:
    """Model config carrying CEL validation rules (x-kubernetes-validations) for the CRD."""
    extra: JsonDict = {"x-kubernetes-validations": [dict(r) for r in rules]}
    return ConfigDict(json_schema_extra=extra)


def parse_time(text: str) -> datetime:
    """A Kubernetes timestamp (RFC 3339, `Z` or an offset, any fraction) as an aware
    datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
