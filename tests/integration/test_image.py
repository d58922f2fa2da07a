"""The Dockerfile's image, built for real (`make image`: buildah with chroot isolation
and vfs storage, on bases made from Debian packages with debootstrap, as this machine
has no container engine and cannot reach Docker Hub): kabin runs in it as the
non-root user 65532, with exactly the distributions requirements.lock pins, and its
operator starts against the local control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import command

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def test_the_image_builds_and_its_operator_runs_as_non_root(kubeconfig: Path) -> None:
    built = await command(str(ROOT / "hack" / "image.sh"), within=1800)
    assert built.code == 0, built.err[-3000:]
    assert built.out.strip() == "localhost/kabin:0.1.0"
    assert "the image's operator started against the local control plane" in built.err
    pinned = [
        line for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line
    ]
    assert f"kabin runs as 65532; its {len(pinned)} packages are requirements.lock's" in built.err
