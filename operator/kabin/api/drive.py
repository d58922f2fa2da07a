"""Drive: a PVC with an explicit, queued lock: at most one running session holds it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from kabin.api.meta import LIST_MAP_BY_TYPE, Condition, Model, SizeQuantity, cel, immutable

DrivePhase = Literal["Pending", "Available", "InUse", "Lost"]


class DriveSpec(Model):
    """The storage a user asked for, and who may use it."""

    model_config = cel(
        {
            "rule": "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
            "messageExpression": "'may only grow: ' + self.size + ' is smaller than ' "
            "+ oldSelf.size",
            "fieldPath": ".size",
            "reason": "FieldValueForbidden",
        },
        *[immutable(f, "drive") for f in ("storageClassName", "accessMode", "owner")],
    )

    size: SizeQuantity
    """Capacity, such as 10Gi. It may only grow."""
    storage_class_name: Annotated[str, Field(max_length=253)] | None = None
    """StorageClass of the PVC (default: the cluster's default). Immutable."""
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = "ReadWriteOnce"
    """Access mode of the PVC. Immutable."""
    access: Literal["private", "shared"] = "shared"
    """private: only the owner's sessions may use it; shared: anyone who may create
    sessions in the namespace."""
    owner: Annotated[str, Field(max_length=253)] | None = None
    """The user who created the drive, recorded at admission. Immutable."""
    reclaim_policy: Literal["Retain", "Delete"] = "Retain"
    """Retain keeps the PVC and its data when the Drive is deleted; Delete deletes them."""


class Hold(Model):
    """A session's place on a drive: holding it, or waiting for it."""

    session: str
    """Name of the session."""
    since: datetime | None = None
    """When it was granted the drive (holder) or started waiting (waiting)."""


class DriveStatus(Model):
    """What the operator observed, written only by the operator."""

    phase: DrivePhase | None = None
    """Pending (PVC not bound), Available, InUse or Lost (PVC gone)."""
    claim_name: str | None = None
    """Name of the PVC."""
    capacity: str | None = None
    """Capacity of the bound PVC."""
    holder: Hold | None = None
    """The session holding the drive."""
    waiting: list[Hold] | None = None
    """Sessions waiting for the drive, first come first served."""
    conditions: list[Condition] | None = Field(default=None, json_schema_extra=LIST_MAP_BY_TYPE)
    """Conditions of the drive."""
    observed_generation: int | None = None
    """The .metadata.generation this status describes."""


class Drive(Model):
    """Storage for a user's files, held by at most one running session at a time."""

    api_version: Literal["kabin.dev/v1alpha1"] = "kabin.dev/v1alpha1"
    kind: Literal["Drive"] = "Drive"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: DriveSpec
    status: DriveStatus | None = None
