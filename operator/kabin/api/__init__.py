"""kabin's API (group kabin.dev, version v1alpha1): the pydantic models of its kinds.

These models are the single source of truth: the CRDs in crds/ are generated
from them (`make crds`), and the client validates with them.
"""

from kabin.api.drive import Drive, DriveSpec, DriveStatus
from kabin.api.environment import EnvironmentConfig, EnvironmentConfigSpec
from kabin.api.meta import API_VERSION, GROUP, VERSION, Condition, parse_quantity
from kabin.api.session import Session, SessionSpec, SessionStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "Drive",
    "DriveSpec",
    "DriveStatus",
    "EnvironmentConfig",
    "EnvironmentConfigSpec",
    "Session",
    "SessionSpec",
    "SessionStatus",
    "parse_quantity",
]
