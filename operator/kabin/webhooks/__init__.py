"""Admission webhooks, served from the operator process by kopf.

Mutating: record who created a Session (`spec.user`) or a Drive
(`spec.owner`), and keep it. Validating: the checks a schema cannot make
because they read other objects (the EnvironmentConfig's caps, the Drive's
existence). Importing this package registers them with kopf.
"""

from kabin.webhooks import admission

__all__ = ["admission"]
