"""The CRDs in crds/ are generated from the models, never edited, and self-documenting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kabin.api import crd

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", crd.KINDS, ids=[k.kind for k in crd.KINDS])
def test_committed_crd_is_what_make_crds_generates(kind: crd.Kind) -> None:
    committed = ROOT / "crds" / f"{kind.name}.yaml"
    assert committed.exists(), f"{committed} is missing: run `make crds`"
    assert committed.read_text() == crd.render(kind), f"{committed} is stale: run `make crds`"


def test_generation_is_reproducible(tmp_path: Path) -> None:
    first = [p.read_text() for p in crd.write(tmp_path / "a")]
    second = [p.read_text() for p in crd.write(tmp_path / "b")]
    assert first == second


def _undocumented(schema: dict[str, Any], path: str, *, top: bool = True) -> list[str]:
    missing = []
    for name, sub in schema.get("properties", {}).items():
        where = f"{path}.{name}"
        # metadata is the API server's own; it allows no description there.
        if not (top and name == "metadata") and "description" not in sub:
            missing.append(where)
        missing += _undocumented(sub, where, top=False)
    if isinstance(schema.get("items"), dict):
        missing += _undocumented(schema["items"], f"{path}[]", top=False)
    return missing


@pytest.mark.parametrize("kind", crd.KINDS, ids=[k.kind for k in crd.KINDS])
def test_every_field_has_a_description(kind: crd.Kind) -> None:
    schema = crd.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema.get("description")
    assert _undocumented(schema, kind.kind) == []


@pytest.mark.parametrize("kind", crd.KINDS, ids=[k.kind for k in crd.KINDS])
def test_schema_is_structural(kind: crd.Kind) -> None:
    text = yaml.safe_dump(crd.crd(kind))
    assert "$ref" not in text
    assert "title:" not in text
    assert "additionalProperties: false" not in text


def test_session_has_scale_and_status_subresources() -> None:
    session = next(k for k in crd.KINDS if k.kind == "Session")
    version = crd.crd(session)["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert version["subresources"]["scale"]["labelSelectorPath"] == ".status.selector"
    assert "status" in version["subresources"]


def test_every_kind_is_in_the_kabin_category_with_a_short_name() -> None:
    names = {k.kind: crd.crd(k)["spec"]["names"] for k in crd.KINDS}
    assert {k: n["shortNames"] for k, n in names.items()} == {
        "EnvironmentConfig": ["envcfg"],
        "Session": ["sess"],
        "Drive": ["drv"],
    }
    assert all(n["categories"] == ["kabin"] for n in names.values())
