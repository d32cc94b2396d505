"""Every environment variable read as a number (reconciler/env_numbers.py): each refuses the
same bad values with one shape of message, and takes blank as unset."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from reconciler.alerts import _timeout as alert_timeout
from reconciler.cli.output import progress_interval
from reconciler.errors import ConfigError
from reconciler.github.gh import gh_timeout
from reconciler.iterable.settings import ClientSettings
from reconciler.members.engine.settings import EngineSettings
from reconciler.sources.time_limit import query_timeout
from reconciler.sources.warehouse import connect_timeout


def _alert(env: dict[str, str]) -> float:
    seconds, why = alert_timeout(env)
    if why is not None:  # a warning there: an alert never fails a run
        raise ConfigError(why.removesuffix(", so alerts are given 5 s"))
    return seconds


READERS: dict[str, Callable[[dict[str, str]], object]] = {
    "RECONCILER_TIMEOUT": lambda env: ClientSettings.from_env(env).timeout,
    "RECONCILER_READ_LAG": lambda env: ClientSettings.from_env(env).read_lag,
    "RECONCILER_MAX_RETRIES": lambda env: ClientSettings.from_env(env).max_retries,
    "RECONCILER_BATCH_SIZE": lambda env: ClientSettings.from_env(env).batch_size,
    "RECONCILER_ENGINE_THRESHOLD": lambda env: EngineSettings.from_env(env).threshold,
    "RECONCILER_DUCKDB_THREADS": lambda env: EngineSettings.from_env(env).threads,
    "RECONCILER_QUERY_TIMEOUT": query_timeout,
    "RECONCILER_DATABASE_CONNECT_TIMEOUT": connect_timeout,
    "RECONCILER_PROGRESS_INTERVAL": progress_interval,
    "RECONCILER_ALERT_TIMEOUT": _alert,
    "RECONCILER_GH_TIMEOUT": gh_timeout,
}
BAD = ["-1", "nan", "inf", "-inf", "1e400", "10s", "0x10", "99999999999999999999", "1e10"]


@pytest.mark.parametrize("variable", sorted(READERS))
@pytest.mark.parametrize("raw", BAD)
def test_every_number_variable_refuses_the_same_bad_values_alike(variable: str, raw: str) -> None:
    """Each variable had a parser of its own: RECONCILER_QUERY_TIMEOUT=1e20 and
    RECONCILER_DATABASE_CONNECT_TIMEOUT=99999999999999999999 were taken where
    RECONCILER_TIMEOUT refused past 1,000,000,000, and the messages had four shapes."""
    with pytest.raises(ConfigError) as caught:
        READERS[variable]({variable: raw})
    shape = (
        rf"^{variable} must be a (whole )?number( of seconds)? (from|above) [0-9]+ "
        rf"(to|and at most) [0-9]+; got '{re.escape(raw)}'$"
    )
    assert re.match(shape, str(caught.value)), str(caught.value)


@pytest.mark.parametrize("variable", sorted(READERS))
def test_blank_is_the_default_for_every_number_variable(variable: str) -> None:
    """RECONCILER_TIMEOUT=' ' was refused where RECONCILER_QUERY_TIMEOUT=' ' meant its
    default."""
    read = READERS[variable]
    assert read({variable: "  "}) == read({})


@pytest.mark.parametrize("variable", sorted(READERS))
def test_a_long_value_is_quoted_cut(variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        READERS[variable]({variable: "9" * 70_000 + "s"})
    assert len(str(caught.value)) < 600 and "(70,001 characters)" in str(caught.value)


def test_a_count_given_a_fraction_or_an_exponent_is_told_it_must_be_whole() -> None:
    with pytest.raises(
        ConfigError, match=r"whole number of seconds from 1 to 1000000000; got '1.5'"
    ):
        connect_timeout({"RECONCILER_DATABASE_CONNECT_TIMEOUT": "1.5"})
    assert query_timeout({"RECONCILER_QUERY_TIMEOUT": "1.5"}) == 1.5
    assert connect_timeout({"RECONCILER_DATABASE_CONNECT_TIMEOUT": " 7 "}) == 7
