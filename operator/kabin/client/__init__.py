"""The Python client: `Session` and `AsyncSession`, call-compatible with the Skaha client.

`AsyncSession` holds the logic (`kabin.client.session`); `Session` is generated from
it (`kabin.client.sync`). Pure translations to and from Skaha's shapes are in
`kabin.client.records`, exceptions in `kabin.client.errors`. See docs/client.md.
"""

from kabin.client.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Invalid,
    KabinError,
    NotFound,
    Timeout,
    Unreachable,
)
from kabin.client.session import AsyncSession
from kabin.client.sync import Session

__all__ = [
    "AlreadyExists",
    "AsyncSession",
    "Conflict",
    "Forbidden",
    "Invalid",
    "KabinError",
    "NotFound",
    "Session",
    "Timeout",
    "Unreachable",
]
