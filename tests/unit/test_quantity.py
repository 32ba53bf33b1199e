from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from ray_operator.quantity import format_quantity, parse_quantity, round_up, sum_quantities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Decimal(0)),
        ("2", Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("500m", Decimal("0.5")),
        ("1500m", Decimal("1.5")),
        ("250u", Decimal("0.00025")),
        ("7n", Decimal("0.000000007")),
        ("1k", Decimal(1000)),
        ("129M", Decimal(129_000_000)),
        ("1G", Decimal(10**9)),
        ("2T", Decimal(2 * 10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("123Mi", Decimal(128_974_848)),
        ("4Gi", Decimal(4 * 1024**3)),
        ("1Ti", Decimal(1024**4)),
        ("1Pi", Decimal(1024**5)),
        ("1Ei", Decimal(1024**6)),
        ("1.5Gi", Decimal(1_610_612_736)),
        ("0.1Ki", Decimal("102.4")),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1e-3", Decimal("0.001")),
        ("2.5e+2", Decimal(250)),
        ("128974848", Decimal(128_974_848)),
        ("+3", Decimal(3)),
        ("-3", Decimal(-3)),
        ("-500m", Decimal("-0.5")),
        ("1.", Decimal(1)),
        (".5", Decimal("0.5")),
    ],
)
def test_parse_is_exact(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


def test_parse_keeps_every_digit_of_large_values() -> None:
    # More digits than Decimal's default 28-digit precision: still exact.
    value = parse_quantity("12345678901234567890.123456789Ei")
    assert Fraction(value) == Fraction(12345678901234567890123456789 * 1024**6, 10**9)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, Decimal(2)), (0.5, Decimal("0.5")), (Decimal("1.25"), Decimal("1.25"))],
)
def test_parse_accepts_numbers_from_hand_written_bodies(value: object, expected: Decimal) -> None:
    assert parse_quantity(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "1 Gi",
        "Gi",
        "1KI",
        "1K",
        "1ki",
        "1gi",
        "1e",
        "1e1.5",
        "1.5.5",
        "--1",
        "1Gib",
        "one",
        "0x10",
        "1_000",
        "1e999",
    ],
)
def test_parse_rejects_bad_text_and_names_it(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity") as err:
        parse_quantity(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize("value", [True, None, [1], {"cpu": 1}, float("nan"), float("inf")])
def test_parse_rejects_non_quantities(value: object) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "binary", "expected"),
    [
        ("0", False, "0"),
        ("1.5", False, "1500m"),
        ("500m", False, "500m"),
        ("2000", False, "2k"),
        ("1500", False, "1500"),
        ("129M", False, "129M"),
        ("1e3", False, "1k"),
        ("0.000000001", False, "1n"),
        ("0.0000000015", False, "2n"),  # finer than nano: rounded up, as the API server does
        ("-1.5", False, "-1500m"),
        ("4Gi", True, "4Gi"),
        ("4Gi", False, "4294967296"),
        ("1536", True, "1536"),
        ("1536Mi", True, "1536Mi"),
        ("128974848", True, "123Mi"),
        ("512", True, "512"),  # below 1Ki: decimal form
        ("1.5Ki", True, "1536"),
        ("0.5", True, "500m"),  # not an integer: decimal form
        ("2Ei", True, "2Ei"),
    ],
)
def test_format_canonical(value: str, binary: bool, expected: str) -> None:
    assert format_quantity(value, binary=binary) == expected


@pytest.mark.parametrize("text", ["1.5", "250m", "4Gi", "129M", "7n", "1e3", "123Mi"])
def test_format_round_trips(text: str) -> None:
    for binary in (False, True):
        assert parse_quantity(format_quantity(text, binary=binary)) == parse_quantity(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", 1),
        ("1", 1),
        ("1.5", 2),
        ("2", 2),
        ("1001m", 2),
        ("0", 0),
        ("-1.5", -2),
        ("4Gi", 4 * 1024**3),
    ],
)
def test_round_up_like_go_value(value: str, expected: int) -> None:
    assert round_up(value) == expected


def test_sum_is_exact_across_units() -> None:
    assert sum_quantities(["500m", "1.5", "2", "250m"]) == Decimal("4.25")
    assert sum_quantities(["1Ei", "1n"]) == Decimal(1024**6) + Decimal("0.000000001")
    assert sum_quantities([]) == 0


def test_sum_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match="'lots'"):
        sum_quantities(["1", "lots"])


def test_why_not_the_client_librarys_quantity_module():
    """kubernetes.utils.quantity would be one module less, but it accepts what the API
    server refuses (a `K` suffix, a leading space), rounds big values to 28 digits, and
    cannot write the canonical form the API server (and KubeRay's status) uses."""
    from kubernetes.utils import quantity as library

    for refused, library_reads in (("1K", 1000), (" 1", 1)):
        assert library.parse_quantity(refused) == library_reads
        with pytest.raises(ValueError):
            parse_quantity(refused)
    big = "12345678901234567890.123456789Ei"
    assert library.parse_quantity(big) != parse_quantity(big)  # rounded to 28 digits
    assert str(parse_quantity(big)).endswith(".071320064")  # exact
    assert library.format_quantity(Decimal("1.5"), "") == "1.5"
    assert format_quantity(Decimal("1.5")) == "1500m"  # as `kubectl get` shows it
