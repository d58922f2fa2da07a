"""A provisioned namespace's guards and who gets one: the pure half of tenancy
(tests/integration/test_tenancy.py tries each against the API server)."""

from __future__ import annotations

import pytest

from kabin.logic import tenancy
from kabin.settings import GatewaySettings

SETTINGS = GatewaySettings(provision_groups=("kabin:users",))


@pytest.mark.parametrize(
    ("user", "groups", "settings", "allowed", "words"),
    [
        ("alice", ("kabin:users",), SETTINGS, True, ""),
        ("mallory", ("students",), SETTINGS, False, "in none of the groups"),
        (
            "system:serviceaccount:default:default",
            ("kabin:users", "system:serviceaccounts"),
            SETTINGS,
            False,
            "system identity",
        ),
        ("anyone", (), GatewaySettings(provision_groups=("*",)), True, ""),
        (
            "system:serviceaccount:ci:runner",
            (),
            GatewaySettings(provision_groups=("*",), allow_system_users=True),
            True,
            "",
        ),
    ],
    ids=["in-group", "not-in-group", "service-account", "everyone", "system-allowed"],
)
def test_who_gets_a_namespace(
    user: str, groups: tuple[str, ...], settings: GatewaySettings, allowed: bool, words: str
) -> None:
    got, why = tenancy.may_provision(user, groups, settings)
    assert got == allowed and words in why


def test_the_gateway_never_impersonates_system_groups() -> None:
    groups = ("team", "system:masters", "system:serviceaccounts", "kabin:users")
    assert tenancy.forwarded_groups(groups, GatewaySettings()) == ("team", "kabin:users")
    only = GatewaySettings(forward_groups=("kabin:users", "system:masters"))
    assert tenancy.forwarded_groups(groups, only) == ("kabin:users",)
    allowed = GatewaySettings(allow_system_users=True)
    assert "system:masters" not in tenancy.forwarded_groups(groups, allowed)


def test_the_namespace_enforces_restricted_pod_security() -> None:
    ns = tenancy.namespace("kabin-alice", "alice", "alice")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["annotations"]["kabin.dev/owner"] == "alice"
    assert not tenancy.needs_labels(ns)
    assert tenancy.needs_labels({"metadata": {"labels": {"kabin.dev/user": "alice"}}})


def test_the_guards() -> None:
    policy, quota, limits = tenancy.guards("kabin-alice", GatewaySettings())
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    sources = policy["spec"]["ingress"][0]["from"]
    allowed = [s["namespaceSelector"]["matchLabels"] for s in sources if "namespaceSelector" in s]
    assert allowed == [
        {"kubernetes.io/metadata.name": "kube-system"},
        {"kubernetes.io/metadata.name": "kabin-system"},
    ]
    assert {"podSelector": {}} in sources  # a session's replicas reach each other
    assert quota["spec"]["hard"]["requests.cpu"] == "64"
    assert limits["spec"]["limits"][0]["defaultRequest"] == {"cpu": "100m", "memory": "256Mi"}


def test_the_binding_is_kabins_role_not_edit() -> None:
    binding = tenancy.binding("kabin-alice", "alice", GatewaySettings().user_role)
    assert binding["roleRef"]["name"] == "kabin-user"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}
    ]
