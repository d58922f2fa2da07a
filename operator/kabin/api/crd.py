"""The CRDs, generated from the pydantic models: `make crds` writes crds/*.yaml.

pydantic emits JSON Schema; Kubernetes wants a structural OpenAPI v3 schema.
The conversion inlines every $ref, turns `X | None` into an optional X, turns
single-value Literals into enums, drops titles and null defaults, and keeps the
`x-kubernetes-*` extensions the models carry (CEL rules, list types,
int-or-string). Everything else about a CRD (names, scope, subresources,
printer columns) is declared once here, in `KINDS`.

Run `python -m kabin.api.crd OUTDIR` to write the files.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kabin.api.drive import DriveSpec, DriveStatus
from kabin.api.environment import EnvironmentConfigSpec
from kabin.api.meta import CATEGORY, GROUP, VERSION
from kabin.api.names import READY
from kabin.api.session import SessionSpec, SessionStatus


@dataclass(frozen=True)
class Kind:
    """Everything about one CRD that is not the schema of its spec and status."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    scope: str
    description: str
    spec: type[BaseModel]
    status: type[BaseModel] | None = None
    columns: tuple[dict[str, Any], ...] = ()
    scale: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


KINDS: tuple[Kind, ...] = (
    Kind(
        kind="EnvironmentConfig",
        plural="environmentconfigs",
        short_names=("envcfg",),
        scope="Cluster",
        description="An administrator-published session type: image, interfaces, "
        "resource defaults and caps, GPU flavour, timeouts, volumes and pod overrides.",
        spec=EnvironmentConfigSpec,
        columns=(
            {"name": "Display Name", "type": "string", "jsonPath": ".spec.displayName"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
            {"name": "GPU", "type": "string", "jsonPath": ".spec.gpu.product", "priority": 1},
            _age(),
        ),
    ),
    Kind(
        kind="Session",
        plural="sessions",
        short_names=("sess",),
        scope="Namespaced",
        description="A compute session: an interactive workspace (JupyterLab, VS Code, "
        "SSH, desktop, web apps) or a headless batch run, in pods with the CPU, memory "
        "and GPUs it asked for.",
        spec=SessionSpec,
        status=SessionStatus,
        columns=(
            {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
            {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": READY,
                "type": "string",
                "jsonPath": f'.status.conditions[?(@.type=="{READY}")].status',
            },
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "URL", "type": "string", "jsonPath": ".status.connectURL"},
            {"name": "Expires", "type": "string", "jsonPath": ".status.expiryTime"},
            _age(),
        ),
        scale={
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    ),
    Kind(
        kind="Drive",
        plural="drives",
        short_names=("drv",),
        scope="Namespaced",
        description="Storage for a user's files (a PVC), held by at most one running "
        "session at a time; others queue for it.",
        spec=DriveSpec,
        status=DriveStatus,
        columns=(
            {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
            {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Holder", "type": "string", "jsonPath": ".status.holder.session"},
            {"name": "Access", "type": "string", "jsonPath": ".spec.access"},
            {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
            _age(),
        ),
    ),
)


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, as a CRD wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _convert(raw, defs)
    return schema


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        target.update(node)  # the referring field's description wins
        return _convert(target, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) == 1 and len(options) < len(node["anyOf"]):  # `X | None`: optional X
            del node["anyOf"]
            inner = dict(options[0])
            inner.update(node)
            return _convert(inner, defs)
        node["anyOf"] = options
    node.pop("title", None)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "default" in node and node["default"] is None:
        del node["default"]
    if node.get("additionalProperties") is False:
        # Structural schemas prune unknown fields (and kubectl refuses them);
        # `false` is not allowed there.
        del node["additionalProperties"]
    if "description" in node:
        node["description"] = " ".join(node["description"].split())
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: _convert(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf"):
            out[key] = _convert(value, defs)
        else:
            out[key] = value
    # int-or-string: Kubernetes wants the types only in anyOf, none at the top.
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    properties: dict[str, Any] = {
        "apiVersion": {
            "type": "string",
            "description": "Versioned schema of this object: kabin.dev/v1alpha1.",
        },
        "kind": {"type": "string", "description": f"The kind of this object: {kind.kind}."},
        "metadata": {"type": "object"},  # the API server allows nothing more here
        "spec": structural(kind.spec),
    }
    if kind.status is not None:
        properties["status"] = structural(kind.status)
    subresources: dict[str, Any] = {"status": {}} if kind.status is not None else {}
    if kind.scale:
        subresources["scale"] = dict(kind.scale)
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": kind.description,
                "required": ["spec"],
                "properties": properties,
            }
        },
        "additionalPrinterColumns": [dict(c) for c in kind.columns],
    }
    if subresources:
        version["subresources"] = subresources
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.name},
        "spec": {
            "group": GROUP,
            "scope": kind.scope,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [version],
        },
    }


def render(kind: Kind) -> str:
    """The YAML text of one CRD, as committed in crds/."""
    header = "# Generated by `make crds` from operator/kabin/api; do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=100)


def write(outdir: Path) -> list[Path]:
    """Write every CRD to `outdir`, one file per kind; return the paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = outdir / f"{kind.name}.yaml"
        path.write_text(render(kind))
        paths.append(path)
    kustomization = outdir / "kustomization.yaml"
    kustomization.write_text(
        "# Generated by `make crds`; do not edit.\n"
        + yaml.safe_dump({"resources": [p.name for p in paths]}, sort_keys=False)
    )
    return [*paths, kustomization]


if __name__ == "__main__":
    for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(written)
