"""The gateway's one connection to the API server, and a view of it for each user.

Every request a user makes goes out on the gateway's connection pool with
`Impersonate-User` and one `Impersonate-Group` header per group, as `kubectl --as
--as-group` sends them, so the API server's RBAC and kabin's admission judge the user,
not the gateway. The gateway's own identity is used only to review tokens, to make a
user's namespace when that is allowed, and for the two public views Skaha has (every
user's sessions with their public fields, and the platform's statistics).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from kabin.api.names import OWNER_ANNOTATION
from kabin.client.errors import Forbidden
from kabin.client.session import AsyncSession
from kabin.gateway.identity import Identity, namespace_of
from kabin.k8s import ApiClient, ApiException, kueue, objects
from kabin.k8s.client import impersonating
from kabin.logic import tenancy
from kabin.settings import GatewaySettings

log = logging.getLogger("kabin.gateway")


class Kube:
    """The API server as the gateway reaches it: as itself, or as a user."""

    def __init__(
        self,
        api: ApiClient,
        settings: GatewaySettings,
        watch_api: ApiClient | None = None,
    ) -> None:
        self.api = api
        # Live streams hold a watch each for minutes: on a pool of their own, so that no
        # number of them can take the connections every other request needs.
        self.watch_api = watch_api or api
        self.settings = settings
        self._views: OrderedDict[tuple[Identity, bool], ApiClient] = OrderedDict()
        self._ready: set[str] = set()
        self._making: dict[str, asyncio.Lock] = {}

    def as_user(self, identity: Identity, *, watching: bool = False) -> ApiClient:
        """An API client that acts as `identity` over the gateway's connection pool (the
        watch pool, `watching`)."""
        key = (identity, watching)
        view = self._views.get(key)
        if view is None:
            base = self.watch_api if watching else self.api
            groups = tenancy.forwarded_groups(identity.groups, self.settings)
            view = impersonating(base, identity.user, groups)
            self._views[key] = view
            while len(self._views) > 1024:
                self._views.popitem(last=False)
        else:
            self._views.move_to_end(key)
        return view

    def namespace(self, identity: Identity) -> str:
        """The namespace of the user's sessions and drives."""
        return namespace_of(identity.user, self.settings.namespace_template)

    def sessions(self, identity: Identity) -> AsyncSession:
        """kabin's client, acting as the user in their namespace."""
        return AsyncSession.over(
            self.as_user(identity),
            namespace=self.namespace(identity),
            timeout=self.settings.request_timeout,
        )

    def public(self) -> AsyncSession:
        """kabin's client as the gateway itself, for Skaha's public views."""
        return AsyncSession.over(
            self.api, namespace="default", timeout=self.settings.request_timeout
        )

    async def review(self, token: str) -> dict[str, Any]:
        """A TokenReview of `token`, by the gateway's own identity."""
        async with asyncio.timeout(self.settings.request_timeout):
            return await objects.review_token(self.api, token)

    def admit(self, identity: Identity) -> None:
        """Refuse a `system:` identity (any pod's ServiceAccount token, a node) unless an
        administrator allows them (403)."""
        if tenancy.system_identity(identity.user, self.settings):
            raise Forbidden(
                f'"{identity.user}" is a system identity; kabin\'s gateway serves people '
                "(set KABIN_GATEWAY_ALLOW_SYSTEM_USERS to let ServiceAccounts in)"
            )

    async def provision(self, identity: Identity) -> None:
        """Make the user's namespace, locked down, with their RoleBinding, on first use
        (when allowed; `kabin.logic.tenancy` has what it holds).

        Only users in `provision_groups` get one, and never a `system:` identity. The
        gateway binds a user only in a namespace it made for that very user (the
        `kabin.dev/owner` annotation holds the exact name): a namespace that exists
        without it (an administrator's, kabin-system) is used as it is, and one made
        for someone else (two names that map to one namespace) is refused. Done once
        per namespace and process; creates tolerate "already exists", so two gateway
        replicas, or a restart, make nothing twice, and a namespace made by an older
        gateway gets what it lacks.
        """
        self.admit(identity)
        if not self.settings.provision_namespaces:
            return
        name = self.namespace(identity)
        if name in self._ready:
            return
        lock = self._making.setdefault(name, asyncio.Lock())
        async with lock, asyncio.timeout(self.settings.request_timeout):
            if name in self._ready:
                return
            found = await objects.get_namespace(self.api, name)
            if found is None:
                allowed, why = tenancy.may_provision(identity.user, identity.groups, self.settings)
                if not allowed:
                    raise Forbidden(why)
                slug = namespace_of(identity.user, "{user}")
                await objects.create_namespace(
                    self.api, tenancy.namespace(name, identity.user, slug)
                )
                log.info("made namespace %s for %s", name, identity.user)
                found = await objects.get_namespace(self.api, name)
            owner = ((found or {}).get("metadata", {}).get("annotations") or {}).get(
                OWNER_ANNOTATION
            )
            if owner is not None and owner != identity.user:
                raise Forbidden(
                    f'namespace "{name}" belongs to another user; ask an administrator '
                    "to set KABIN_GATEWAY_NAMESPACE_TEMPLATE or make yours"
                )
            if owner == identity.user:
                await self._lock_down(name, found or {})
                if await objects.create_role_binding(
                    self.api, tenancy.binding(name, identity.user, self.settings.user_role)
                ):
                    await self._until_allowed(identity, name)
            self._ready.add(name)
            self._making.pop(name, None)

    async def _lock_down(self, name: str, found: dict[str, Any]) -> None:
        """Pod Security labels, NetworkPolicy, ResourceQuota and LimitRange, before the
        user is bound: their first session is already inside the guards."""
        if tenancy.needs_labels(found):
            await objects.patch_namespace(
                self.api, name, {"metadata": {"labels": tenancy.PSA_LABELS}}
            )
        for guard in tenancy.guards(name, self.settings):
            await objects.create_guard(self.api, guard)
        queue, cluster_queue = self.settings.local_queue, self.settings.cluster_queue
        # The user's own line in the shared ClusterQueue: with usage-based admission fair
        # sharing there, each user's recent use counts against their next turn.
        if (
            cluster_queue
            and await kueue.installed(self.api)
            and await kueue.create_local_queue(self.api, name, queue, cluster_queue)
        ):
            log.info("made LocalQueue %s/%s (ClusterQueue %s)", name, queue, cluster_queue)

    async def _until_allowed(self, identity: Identity, namespace: str) -> None:
        """Wait until the API server's authorizer has seen a new RoleBinding (its cache
        lags the write by a moment), so that the user's first request is not refused."""
        view = self.as_user(identity)
        for _ in range(100):
            try:
                await objects.list_custom(view, "sessions", namespace)
                return
            except ApiException as e:
                if e.status != 403:
                    raise
            await asyncio.sleep(0.05)
