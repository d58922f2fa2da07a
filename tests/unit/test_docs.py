"""The README stays short and leads to every page; the files the pages name exist; the
generated settings tables name every setting. (`make docs` checks the links inside the
site, with --strict.)"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from kabin import settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def hooks() -> ModuleType:
    """hack/docs_hooks.py, the site's generator (hack/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "hack" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_at_most_6500_bytes() -> None:
    # Not counting the chart's values table, which is generated (hack/chart.py) and
    # belongs with the install line.
    text = README.read_text()
    head, _, rest = text.partition("<!-- chart-values -->")
    size = len((head + rest.partition("<!-- /chart-values -->")[2]).encode())
    assert size <= 6500, f"README.md is {size} bytes; move detail into docs/"


def test_readme_links_every_docs_page() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", README.read_text()))
    pages = {p.relative_to(ROOT).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - linked == set(), "docs pages the README does not link"
    assert linked - pages == set(), "README links to docs pages that do not exist"


def test_files_named_in_the_docs_exist() -> None:
    """Source files are named in code spans, not linked, so mkdocs does not check them."""
    span = re.compile(r"`((?:operator|tests|hack|manifests|examples|benchmarks|crds)/[^`\s]*)`")
    named = {
        (page.relative_to(ROOT).as_posix(), path)
        for page in [README, *DOCS.rglob("*.md")]
        for path in span.findall(page.read_text())
    }
    assert {(page, path) for page, path in named if not (ROOT / path).exists()} == set()


@pytest.mark.parametrize("name", ["OperatorSettings", "AgentSettings", "GatewaySettings"])
def test_settings_tables_name_every_setting(name: str) -> None:
    cls = getattr(settings, name)
    table = hooks().generate("settings", name)
    prefix = cls.model_config["env_prefix"]
    for field in cls.model_fields:
        assert f"`{prefix}{field}`".upper() in table.upper(), f"{name}.{field} is missing"
