from __future__ import annotations

from datetime import datetime

import pytest

from aupd.timewindows import active_window, parse_window

MON_1230 = datetime(2026, 11, 23, 12, 30)  # a Monday
MON_1300 = datetime(2026, 11, 23, 13, 0)
SAT_0900 = datetime(2026, 11, 28, 9, 0)
FRI_2359 = datetime(2026, 11, 27, 23, 59)


@pytest.mark.parametrize(
    ("spec", "when", "inside"),
    [
        ("Mon-Fri 12:00-13:00", MON_1230, True),
        ("Mon-Fri 12:00-13:00", MON_1300, False),  # the end is exclusive
        ("Mon-Fri 12:00-13:00", SAT_0900, False),
        ("Sat-Sun", SAT_0900, True),
        ("sat-sun", MON_1230, False),
        ("Fri 17:30-24:00", FRI_2359, True),
        ("Fri-Mon", MON_1230, True),  # wraps round the week end
        ("Fri-Mon", datetime(2026, 11, 25, 10, 0), False),  # Wednesday
    ],
)
def test_window_contains(spec: str, when: datetime, inside: bool) -> None:
    assert parse_window(spec).contains(when) is inside


@pytest.mark.parametrize(
    "spec", ["", "Funday", "Mon 12:00", "Mon 25:00-26:00", "Mon 13:00-12:00", "Mon 12:60-13:00"]
)
def test_bad_windows(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_window(spec)


def test_active_window_names_the_open_one() -> None:
    specs = ("Sat-Sun", "Mon-Fri 12:00-13:00")
    assert active_window(specs, MON_1230) == "Mon-Fri 12:00-13:00"
    assert active_window(specs, MON_1300) is None
