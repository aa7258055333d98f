"""Read times written as durations: what users type for --read-time and --times."""

from __future__ import annotations

import math

import pytest

from mosaicnet.errors import ConfigError
from mosaicnet.meta.read_time import format_read_time, parse_read_time, parse_read_times


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("30d", 30 * 86400.0),
        ("2.5h", 9000.0),
        ("1e5s", 1e5),
        ("1E5", 1e5),
        (" 10 min ", 600.0),
        ("250ms", 0.25),
        ("0", 0.0),
        ("2w", 14 * 86400.0),
        ("1y", 365 * 86400.0),
        (".5d", 43200.0),
        (42, 42.0),
        (0.5, 0.5),
    ],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_read_time(text) == pytest.approx(seconds, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1d", "negative"),
        (-5.0, "negative"),
        ("3m", "ambiguous"),
        ("3 fortnights", "unknown unit"),
        ("soon", "cannot read 'soon'"),
        ("1d2h", "cannot read"),
        ("", "cannot read"),
        ("inf", "cannot read"),
        (math.nan, "not finite"),
        (True, "not a duration"),
        (None, "not a duration"),
    ],
)
def test_bad_read_times_say_what_to_write(text, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_read_time(text)
    if message in ("unknown unit", "cannot read 'soon'"):
        assert "30d" in str(error.value)  # the message shows an example to copy


def test_lists_of_read_times():
    assert parse_read_times("1s,1h,1d,30d") == (1.0, 3600.0, 86400.0, 2592000.0)
    assert parse_read_times(["1s", 7.0]) == (1.0, 7.0)
    assert parse_read_times("1s, 2h,") == (1.0, 7200.0)  # stray spaces and a trailing comma
    with pytest.raises(ConfigError, match="no read times"):
        parse_read_times(" , ")
    with pytest.raises(ConfigError, match="negative"):
        parse_read_times("1s,-1h")


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(1.0, "1 s"), (0.25, "0.25 s"), (90.0, "90 s"), (3600.0, "1 h"), (2592000.0, "30 d"),
     (9000.0, "150 min"), (0.0, "0 s")],
)  # fmt: skip
def test_labels_round_trip(seconds, label):
    assert format_read_time(seconds) == label
    number, unit = label.split()
    assert parse_read_time(number + unit) == pytest.approx(seconds)
