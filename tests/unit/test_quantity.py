"""Kubernetes quantities, parsed as the API server reads them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kabin.api.meta import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", Decimal(2)),
        (3, Decimal(3)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("1Ki", Decimal(1024)),
        ("4Gi", Decimal(4 * 2**30)),
        ("1G", Decimal(10**9)),
        ("256Gi", Decimal(256 * 2**30)),
        ("1Ti", Decimal(2**40)),
        ("1e3", Decimal(1000)),
        ("100n", Decimal("1e-7")),
    ],
    ids=lambda v: str(v),
)
def test_parse(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "4GB", "1.2.3", "", "Gi", "-"], ids=repr)
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(text)


def test_binary_and_decimal_suffixes_compare_by_value() -> None:
    assert parse_quantity("1Ti") > parse_quantity("256Gi")
    assert parse_quantity("1000Mi") < parse_quantity("1Gi")
    assert parse_quantity("32") < parse_quantity("64")
