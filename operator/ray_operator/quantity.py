"""Kubernetes resource quantities ("500m", "4Gi", "1e3", ...), parsed exactly.

The grammar is the API server's (`k8s.io/apimachinery/pkg/api/resource`):

    quantity ::= sign? number suffix
    number   ::= digits | digits "." digits? | "." digits
    suffix   ::= "" | n | u | m | k | M | G | T | P | E    (powers of 1000)
               | Ki | Mi | Gi | Ti | Pi | Ei               (powers of 1024)
               | (e | E) sign? digits                      (a power of ten)

Values are returned as `Decimal`. Every quantity is a finite decimal fraction, so the
result is exact (parsing raises the working precision as far as the input needs).
Callers that add many quantities should use `sum_quantities`, which stays exact too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal, Inexact, localcontext

Number = Decimal | int

_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}

_QUANTITY = re.compile(
    r"""
    (?P<sign>[+-])?
    (?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)
    (?:
        (?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)
      | [eE](?P<exponent>[+-]?[0-9]+)
      | (?P<decimal>[numkMGTPE]?)
    )
    """,
    re.VERBOSE,
)

# Far beyond any real resource amount; keeps a hostile "1e999999999" from costing
# memory or time in later arithmetic.
MAX_EXPONENT = 64


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """The exact value of a Kubernetes quantity.

    Accepts the string forms above and, because hand-written bodies carry them, plain
    ints, floats and Decimals. Raises ValueError naming the bad value otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}: expected a string such as '500m' or '4Gi'")
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"invalid quantity {value!r}: not a finite number")
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise ValueError(
            f"invalid quantity {value!r}: expected a string such as '500m' or '4Gi', "
            f"got {type(value).__name__}"
        )
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise ValueError(
            f"invalid quantity {value!r}: expected a number with an optional suffix "
            "(n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3)"
        )
    number = Decimal(match["number"])  # the constructor is exact
    if match["sign"] == "-":
        number = -number
    with localcontext() as ctx:
        ctx.prec = len(value) + 40  # enough for any product below; checked by the trap
        ctx.traps[Inexact] = True
        if match["binary"] is not None:
            return number * (Decimal(1024) ** _BINARY_SUFFIXES[match["binary"]])
        if match["exponent"] is not None:
            exponent = int(match["exponent"])
            if abs(exponent) > MAX_EXPONENT:
                raise ValueError(
                    f"invalid quantity {value!r}: exponent {exponent} is out of range "
                    f"(at most {MAX_EXPONENT} either way)"
                )
            return number.scaleb(exponent)
        return number.scaleb(_DECIMAL_SUFFIXES[match["decimal"]])


def sum_quantities(values: Iterable[str | int | float | Decimal]) -> Decimal:
    """The exact sum of quantities (in any accepted form)."""
    parsed = [parse_quantity(v) for v in values]
    with localcontext() as ctx:
        ctx.prec = max([len(str(p)) for p in parsed] + [28]) + 20
        ctx.traps[Inexact] = True
        return sum(parsed, Decimal(0))


def round_up(value: str | int | float | Decimal) -> int:
    """The quantity as an integer, rounded away from zero (Go's `Quantity.Value()`):
    a CPU limit of 500m counts as 1, 1.5 as 2."""
    number = parse_quantity(value)
    magnitude = math.ceil(abs(number))
    return -magnitude if number < 0 else magnitude


def format_quantity(value: str | int | float | Decimal, *, binary: bool = False) -> str:
    """The canonical string for a quantity, as the API server would print it.

    Decimal form: the largest suffix n, u, m, "", k, M, G, T, P, E that leaves an
    integer mantissa ("1.5" -> "1500m", "2000" -> "2k", "129000000" -> "129M").
    With `binary=True` (memory), integers of at least 1024 use the largest of Ki..Ei
    that divides them ("4294967296" -> "4Gi", "1536" -> "1536"); anything else falls
    back to the decimal form. Amounts finer than 1n are rounded up to whole nanos,
    as the API server does."""
    number = parse_quantity(value)
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    with localcontext() as ctx:
        ctx.prec = len(str(magnitude)) + 40
        if binary and magnitude >= 1024 and magnitude == magnitude.to_integral_value():
            whole = int(magnitude)
            for suffix, power in sorted(_BINARY_SUFFIXES.items(), key=lambda kv: -kv[1]):
                unit = 1024**power
                if whole % unit == 0:
                    return f"{sign}{whole // unit}{suffix}"
            return f"{sign}{whole}"
        nanos = math.ceil(magnitude.scaleb(9))  # whole nanos, rounded up
        for suffix, exponent in sorted(_DECIMAL_SUFFIXES.items(), key=lambda kv: -kv[1]):
            unit = 10 ** (exponent + 9)
            if nanos % unit == 0:
                return f"{sign}{nanos // unit}{suffix}"
    raise AssertionError("unreachable: every whole number of nanos has an 'n' form")
