"""The kopf handlers of the operator.

Importing this package registers every handler with kopf's default registry;
`kabin operator` and the test harness both run kopf on it. Handlers stay thin:
they read, call `kabin.logic`, apply through `kabin.k8s` and write status once.
"""

from kabin.handlers import cache, drives, lifecycle, runtime, sessions

__all__ = ["cache", "drives", "lifecycle", "runtime", "sessions"]
