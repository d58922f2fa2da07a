"""One rule, one place: condition types are named in `kabin.api.names` only, and the
API client library stays behind `kabin.k8s` and `kabin.client`."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "operator" / "kabin"
CONDITIONS = re.compile(
    r"""["'](Ready|DriveReady|Scheduled|ExpiringSoon|DeletionBlocked|PodScheduled)["']"""
    r"""|(?:conditions(?:_of\([^)]*\))?\.get\(|type"?\]? ?== ?)["']Failed["']"""
)


def test_condition_types_are_written_only_in_api_names() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(ROOT.rglob("*.py"))
        if path != ROOT / "api" / "names.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if CONDITIONS.search(line)
    ]
    assert found == [], "use kabin.api.names (READY, condition(), is_true()):\n" + "\n".join(found)


def test_the_rule_finds_a_literal() -> None:
    assert CONDITIONS.search('ready = conditions.get("Ready", {})')
    assert CONDITIONS.search('failed = conditions.get("Failed", {})')
    assert not CONDITIONS.search('if phase == "Failed":')
