"""How kabin connects to the API server: the environment's proxy read once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kabin.k8s import connect
from kabin.k8s.client import request_kind

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


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", "https://h/api/v1/namespaces/ns/pods", ("list", "pods")),
        ("GET", "https://h/api/v1/namespaces/ns/pods?watch=true&x=1", ("watch", "pods")),
        ("GET", "https://h/api/v1/namespaces/ns/pods/p", ("get", "pods")),
        ("GET", "https://h/api/v1/namespaces/ns", ("get", "namespaces")),
        ("POST", "https://h/api/v1/namespaces/ns/pods", ("create", "pods")),
        (
            "PATCH",
            "https://h/apis/kabin.dev/v1alpha1/namespaces/ns/sessions/s/status",
            ("patch", "sessions/status"),
        ),
        ("DELETE", "https://h/api/v1/namespaces/ns/pods/p", ("delete", "pods")),
        (
            "GET",
            "https://h/apis/kabin.dev/v1alpha1/environmentconfigs/e",
            ("get", "environmentconfigs"),
        ),
    ],
)
def test_each_request_is_counted_under_the_api_servers_verb_and_resource(
    method: str, url: str, kind: tuple[str, str]
) -> None:
    assert request_kind(method, url) == kind
