"""Hypothesis settings for the reliability battery (``tests/test_battery_*.py``).

Every property in the battery takes its settings from :func:`battery`, never from a bare
``@settings``, so one environment variable scales all of them:

- unset (or ``AUPD_FUZZ=default``): the example counts written in the test modules,
  derandomized (the same examples on every run, so CI is stable) and with no example
  database, so the normal suite stays fast and deterministic;
- ``AUPD_FUZZ=deep``: every count multiplied by :data:`DEEP_FACTOR` (x40: 25 examples
  become 1000), randomized, so each deep run explores new inputs. A failure prints the
  seed and a ``@reproduce_failure`` blob; re-run with ``--hypothesis-seed=N`` to replay;
- ``AUPD_FUZZ=<n>`` (a positive integer): every count multiplied by ``n``, derandomized
  when ``n`` is 1, randomized otherwise.

The deep run (``make fuzz``)::

    AUPD_FUZZ=deep .venv/bin/pytest -q tests/test_battery_*.py -p no:cacheprovider \
        --hypothesis-show-statistics

The settings are handed to each test explicitly rather than loaded as the global
default profile: loading a profile here would change every other test module in the
session, and ``tests/conftest.py`` is not the battery's to edit.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, settings

__all__ = ["DEEP_FACTOR", "FUZZ_ENV", "battery", "fuzz_factor"]

FUZZ_ENV: Final = "AUPD_FUZZ"
DEEP_FACTOR: Final = 40

# Properties drive live servers (a gateway, a proxy, a Flask app) through module-scoped
# fixtures: examples are slow by design and share fixtures on purpose.
_SUPPRESS: Final = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

settings.register_profile(
    "aupd-battery",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "aupd-battery-deep",
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[*_SUPPRESS, HealthCheck.data_too_large],
)


def fuzz_factor(value: str | None = None) -> int:
    """How many times the written example counts run, from ``AUPD_FUZZ``.

    An unknown value is an error rather than a silent default run: ``AUPD_FUZZ=Deep``
    or ``AUPD_FUZZ=deeep`` would otherwise look like a deep run that found nothing.
    """
    raw = (os.environ.get(FUZZ_ENV, "") if value is None else value).strip()
    if raw in ("", "default"):
        return 1
    if raw == "deep":
        return DEEP_FACTOR
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    raise ValueError(f"{FUZZ_ENV}={raw!r}: expected 'default', 'deep' or a positive integer")


def battery(max_examples: int) -> settings:
    """Settings for one battery property: ``max_examples`` in the default profile,
    scaled by :func:`fuzz_factor` otherwise."""
    factor = fuzz_factor()
    parent = settings.get_profile("aupd-battery" if factor == 1 else "aupd-battery-deep")
    return settings(parent, max_examples=max_examples * factor)
