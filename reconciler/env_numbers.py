"""Numbers read from environment variables (timeouts, counts, limits): one reading for all
of them, so that each refuses the same bad values with a message of one shape.

Each was read by a parser of its own, and they disagreed: RECONCILER_TIMEOUT=" " was
refused where RECONCILER_QUERY_TIMEOUT=" " meant the default, and
RECONCILER_DATABASE_CONNECT_TIMEOUT=99999999999999999999 or RECONCILER_QUERY_TIMEOUT=1e20
were taken where RECONCILER_TIMEOUT refused anything past 1,000,000,000.

The rule: unset, empty or blank is the variable's default; otherwise the value is a number
as Python writes one (`30`, `1.5`, `1e3`, `1_000`; a whole number where a count is meant)
within the variable's range, which is never past MAX_VALUE. Anything else (`10s`, `-1`,
`nan`, `inf`, `1e400`) is a ConfigError that names the variable, says the range and quotes
the value (cut when long).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import ConfigError, quoted

# The largest value any variable takes (31 years in seconds). Beyond about 9.2e9 seconds a
# wait cannot be given to the operating system: RECONCILER_TIMEOUT=1e10 or
# RECONCILER_READ_LAG=1e300 ended every run with an internal OverflowError.
MAX_VALUE = 1_000_000_000


@dataclass(frozen=True)
class NumberRule:
    """What a variable accepts: a whole number or any, from `least` (or above it, when
    `above`) to `most`; `unit` ("seconds") and `note` only word the message."""

    whole: bool = False
    least: float = 0
    above: bool = False
    most: float = MAX_VALUE
    unit: str = ""
    note: str = ""

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        if self.unit:
            kind += f" of {self.unit}"
        if self.above:
            return f"{kind} above {_figure(self.least)} and at most {_figure(self.most)}"
        return f"{kind} from {_figure(self.least)} to {_figure(self.most)}"

    def accepts(self, value: float) -> bool:
        low = value > self.least if self.above else value >= self.least
        return low and value <= self.most and (not self.whole or float(value).is_integer())


SECONDS = NumberRule(unit="seconds")
SECONDS_ABOVE_0 = NumberRule(above=True, unit="seconds")
COUNT = NumberRule(whole=True)


def is_unset(raw: str | None) -> bool:
    """Unset, empty or blank: the default."""
    return raw is None or not raw.strip()


def refusal(name: str, raw: str, rule: NumberRule) -> str:
    """The message for a value `rule` refuses: `NAME must be ...; got '...'`."""
    note = f" ({rule.note})" if rule.note else ""
    return f"{name} must be {rule.describe()}{note}; got {quoted(raw)}"


def read_number(raw: str, name: str, rule: NumberRule) -> float:
    """`raw` as `rule` reads it (an int when whole), or ConfigError."""
    try:
        value: float = int(raw) if rule.whole else float(raw)
    except ValueError:
        raise ConfigError(refusal(name, raw, rule)) from None
    if not math.isfinite(value) or not rule.accepts(value):
        raise ConfigError(refusal(name, raw, rule))
    return value


def env_float(environ: Mapping[str, str], name: str, default: float, rule: NumberRule) -> float:
    """The variable `name` as a number `rule` accepts, or `default` when unset or blank."""
    raw = environ.get(name)
    if raw is None or is_unset(raw):
        return default
    return float(read_number(raw, name, rule))


def env_int(environ: Mapping[str, str], name: str, default: int, rule: NumberRule) -> int:
    """The variable `name` as a whole number `rule` accepts, or `default`."""
    assert rule.whole
    raw = environ.get(name)
    if raw is None or is_unset(raw):
        return default
    return int(read_number(raw, name, rule))


def _figure(value: float) -> str:
    # 1000000000, not 1e+09: the figure a user types.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
