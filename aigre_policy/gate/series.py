"""One usage declaration's contributions in time order, summed exactly.

A ``Series`` holds the rows a declaration's filter admits, sorted by ``(at_us,
row id)``, with prefix sums, so the ``sum`` and ``count`` over any window are two
binary searches and a subtraction. Values are kept as exact integers in units of
2**-1074 (the smallest float step), so prefix sums never round: a ``sum`` is the
exact total of the window, rounded once to a float when any value is a float,
and it does not depend on the order rows arrived in. Rows that could not be read
are kept apart: a window holding one fails closed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate, islice
from typing import Any

from aigre_policy.gate.ledger import Contribution, LedgerError

_BITS = 1074
_UNIT = 1 << _BITS


def exact(value: int | float) -> int:
    """``value`` as an integer number of 2**-1074 units: no rounding for any finite float."""
    if isinstance(value, int):
        return value << _BITS
    numerator, denominator = value.as_integer_ratio()  # the denominator is a power of two
    return numerator << (_BITS - denominator.bit_length() + 1)


class Series:
    """The admitted rows of one declaration, with exact prefix sums kept lazily."""

    __slots__ = ("_at", "_errors", "_exact", "_floats", "_keys", "_prefix", "_valid", "_values")

    def __init__(self) -> None:
        self._keys: list[tuple[int, int]] = []  # (at_us, row id), sorted
        self._values: list[int | float] = []
        self._exact: list[int] = []
        self._floats: list[int] = []  # 1 where the value is a float
        self._prefix: list[tuple[int, int]] = [(0, 0)]  # (exact total, floats) before index i
        self._valid = 0  # _prefix[: _valid + 1] is up to date
        self._at: dict[int, int] = {}  # row id -> at_us, for rows in _keys
        self._errors: dict[int, tuple[int, str]] = {}  # row id -> (at_us, why unreadable)

    def __len__(self) -> int:
        return len(self._keys) + len(self._errors)

    def put(self, row_id: int, at_us: int, contribution: Contribution) -> None:
        self.drop(row_id)
        if contribution.error is not None:
            self._errors[row_id] = (at_us, contribution.error)
            return
        if not contribution.passed:
            return
        value = contribution.value
        assert isinstance(value, int | float)
        index = bisect_right(self._keys, (at_us, row_id))
        self._keys.insert(index, (at_us, row_id))
        self._values.insert(index, value)
        self._exact.insert(index, exact(value))
        self._floats.insert(index, int(isinstance(value, float)))
        self._at[row_id] = at_us
        self._valid = min(self._valid, index)

    def drop(self, row_id: int) -> None:
        self._errors.pop(row_id, None)
        at_us = self._at.pop(row_id, None)
        if at_us is None:
            return
        index = bisect_left(self._keys, (at_us, row_id))
        del self._keys[index], self._values[index], self._exact[index], self._floats[index]
        self._valid = min(self._valid, index)

    def aggregate(
        self, aggregate: str, start_us: int, end_us: int, skip: int | None, name: str
    ) -> Any:
        """``aggregate`` of the rows with ``start_us <= at_us <= end_us``, except row ``skip``."""
        for row_id, (at_us, message) in self._errors.items():
            if start_us <= at_us <= end_us and row_id != skip:
                raise LedgerError(f"usage `{name}` {message}")
        lo = bisect_left(self._keys, (start_us,))
        hi = bisect_left(self._keys, (end_us + 1,))
        skip_at_us = self._at.get(skip) if skip is not None else None
        index = (
            bisect_left(self._keys, (skip_at_us, skip))
            if skip_at_us is not None and start_us <= skip_at_us <= end_us
            else None
        )
        if aggregate == "count":
            return hi - lo - (index is not None)
        if aggregate == "max":
            values = self._values[lo:hi]
            if index is not None:
                del values[index - lo]
            return max(values, default=0)
        if aggregate != "sum":
            raise ValueError(f"unknown aggregate {aggregate!r}")
        self._refresh()
        total = self._prefix[hi][0] - self._prefix[lo][0]
        floats = self._prefix[hi][1] - self._prefix[lo][1]
        if index is not None:
            total -= self._exact[index]
            floats -= self._floats[index]
        if not floats:
            return total >> _BITS  # whole numbers only: exact
        try:
            return total / _UNIT  # correctly rounded
        except OverflowError:
            raise LedgerError(f"usage `{name}` is too large: not a finite number") from None

    def _refresh(self) -> None:
        valid = self._valid
        if valid == len(self._keys):
            return
        del self._prefix[valid + 1 :]
        start = self._prefix[valid]
        self._prefix.extend(
            islice(
                accumulate(
                    zip(self._exact[valid:], self._floats[valid:], strict=True),
                    lambda acc, item: (acc[0] + item[0], acc[1] + item[1]),
                    initial=start,
                ),
                1,
                None,
            )
        )
        self._valid = len(self._keys)
