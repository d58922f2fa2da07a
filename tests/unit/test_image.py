"""The image's inputs: every runtime dependency pinned in requirements.lock, which the
Dockerfile installs with as constraints."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_is_pinned_and_the_image_uses_the_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pinned[name.lower().replace("_", "-")] = version
    missing = [d for d in project["dependencies"] if _name(d) not in pinned]
    assert not missing, f"runtime dependencies missing from requirements.lock: {missing}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--constraint requirements.lock" in dockerfile
    assert "USER 65532:65532" in dockerfile, "the image runs as non-root"
