"""Number and value formatting shared by every report, page and JSON record.

One rule each: :func:`finite` (a float or None, never NaN), :func:`jsonable` (plain JSON
types), :func:`fmt_number` (four decimals unless that hides the figure), :func:`fmt_fixed`
(a fixed number of decimals: PSI with three, ROC AUC with four). ``None``, NaN and infinities
read ``n/a`` everywhere. No numpy import: numpy scalars are recognised by their ``item()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NA = "n/a"
PSI_DECIMALS, AUC_DECIMALS = 3, 4


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, TypeError):  # an array of several values: not a scalar
            return value
    return value


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite."""
    value = _scalar(value)
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN/inf to None (so the JSON stays standard),
    dates and timestamps to ISO text, tuples and sets to lists, anything else to its text."""
    value = _scalar(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def fmt_number(value: Any, signed: bool = False) -> str:
    """Four decimals, unless that would hide the figure (parity ~1e-4, label agreement 0.99995);
    integers with thousands separators; anything not a number as its text."""
    value = _scalar(value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    if isinstance(value, bool) or not isinstance(value, float | int):
        return str(value)
    if isinstance(value, int):
        return f"{value:+,}" if signed else f"{value:,}"
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    if value != round(value, 4) and abs(round(value, 4)) in (0.0, 1.0):
        text = f"{value:+.6g}" if signed else f"{value:.6g}"
    return text


def fmt_fixed(value: Any, decimals: int) -> str:
    """``decimals`` decimals, ``n/a`` for a missing or non-finite value."""
    number = finite(value)
    return NA if number is None else f"{number:.{decimals}f}"


def fmt_psi(value: Any) -> str:
    return fmt_fixed(value, PSI_DECIMALS)


def fmt_auc(value: Any) -> str:
    return fmt_fixed(value, AUC_DECIMALS)


def fmt_short(value: Any) -> str:
    """A bound or threshold as people write it: ``0.05``, ``3``, ``1e+06`` (6 significant digits)."""
    value = _scalar(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.6g}" if isinstance(value, float) else str(value)


__all__ = ["NA", "finite", "fmt_auc", "fmt_fixed", "fmt_number", "fmt_psi", "fmt_short", "jsonable"]
