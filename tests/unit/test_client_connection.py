"""How kabin connects to the API server: the environment's proxy read once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kabin.k8s import connect

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://api.example.test:6443"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}


@pytest.mark.parametrize(
    ("env", "proxy"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy.example.test:3128"}, "http://proxy.example.test:3128"),
        ({"HTTPS_PROXY": "http://proxy.example.test:3128", "NO_PROXY": ".example.test"}, None),
    ],
    ids=["none", "https-proxy", "no-proxy-exempts"],
)
async def test_the_environments_proxy_is_resolved_once(
    env: dict[str, str], proxy: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "config").write_text(yaml.safe_dump(KUBECONFIG))
    api = await connect(kubeconfig=str(tmp_path / "config"))
    try:
        assert api.rest_client.proxy == proxy
        # aiohttp no longer looks at the environment (or ~/.netrc) per request.
        assert api.rest_client.pool_manager.trust_env is False
    finally:
        await api.close()
