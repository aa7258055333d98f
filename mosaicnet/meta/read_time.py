"""Read times of a programmed chip, written as durations: ``1s``, ``2.5h``, ``1d``, ``30d``.

A read time is the time since the chip was programmed (seconds on the
programming clock of :mod:`mosaicnet.devices.programming`). Users write it as a
number with a unit; a bare number means seconds. Units: ``ms``, ``s``
(``sec``), ``min``, ``h``, ``d``, ``w`` (week), ``y`` (365 days). ``m`` is
refused because it could mean minutes or months.

>>> parse_read_time("30d")
2592000.0
>>> parse_read_times("1s,1h,1d")
(1.0, 3600.0, 86400.0)
>>> format_read_time(2592000.0)
'30 d'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from mosaicnet.errors import ConfigError

#: Seconds per unit accepted by :func:`parse_read_time`.
UNIT_SECONDS: dict[str, float] = {
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}

_PATTERN = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*$")
_EXAMPLES = "e.g. 1s, 2.5h, 1d, 30d, 1e5s (units: " + ", ".join(UNIT_SECONDS) + ")"


def parse_read_time(value: str | float | int) -> float:
    """A read time in seconds from ``"30d"``-style text or a number of seconds.

    Raises
    ------
    ConfigError
        Unparseable text, an unknown unit, a negative or non-finite time.
    """
    if isinstance(value, bool):
        raise ConfigError(f"read time {value!r} is not a duration; {_EXAMPLES}")
    if isinstance(value, int | float):
        seconds, text = float(value), repr(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ConfigError(f"cannot read {value!r} as a read time; write {_EXAMPLES}")
        number, unit = match.groups()
        unit_key = unit.lower() or "s"
        if unit_key == "m":
            raise ConfigError(
                f"read time {value!r}: 'm' is ambiguous; write 'min' for minutes or "
                "'d' for days (30d is about a month)"
            )
        if unit_key not in UNIT_SECONDS:
            raise ConfigError(f"read time {value!r} has an unknown unit {unit!r}; {_EXAMPLES}")
        seconds, text = float(number) * UNIT_SECONDS[unit_key], value
    else:
        raise ConfigError(f"read time {value!r} is not a duration; {_EXAMPLES}")
    if not math.isfinite(seconds):
        raise ConfigError(f"read time {text} is not finite")
    if seconds < 0:
        raise ConfigError(
            f"read time {text} is negative; a read happens at or after programming (>= 0 s)"
        )
    return seconds


def parse_read_times(values: str | Iterable[str | float]) -> tuple[float, ...]:
    """Several read times: a comma-separated string or an iterable; at least one."""
    items = values.split(",") if isinstance(values, str) else list(values)
    items = [item for item in items if not (isinstance(item, str) and not item.strip())]
    if not items:
        raise ConfigError(f"no read times given; write a comma-separated list, {_EXAMPLES}")
    return tuple(parse_read_time(item) for item in items)


def format_read_time(seconds: float) -> str:
    """A compact label: the largest of s, min, h, d whose multiple it is (else seconds)."""
    for unit in ("d", "h", "min"):
        count = seconds / UNIT_SECONDS[unit]
        if count >= 1 and math.isclose(count, round(count), rel_tol=0, abs_tol=1e-9):
            return f"{round(count)} {unit}"
    return f"{seconds:g} s"
