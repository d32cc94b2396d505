"""The client's settings from the environment, and the README's table of them."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.iterable.settings import ClientSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def _client_settings_table() -> dict[str, str]:
    """The README's "Client settings" table: each variable and the default it gives (rows
    naming several variables give their defaults in the same order)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Client settings") : text.index("## Failure behaviour")]
    table: dict[str, str] = {}
    for names, defaults in re.findall(r"^\| (`RECONCILER_[^|]*) \| ([^|]*) \|", section, re.M):
        variables = re.findall(r"RECONCILER_\w+", names)
        values = defaults.split(", ") if len(variables) > 1 else [defaults]
        assert len(values) == len(variables), names
        table.update(zip(variables, (v.strip() for v in values), strict=True))
    return table


def test_every_client_setting_is_in_the_readme_with_the_default_the_code_has() -> None:
    """RECONCILER_CAMPAIGNS_PER_SECOND paced the blast-radius read but was in no table."""
    table = _client_settings_table()
    defaults = ClientSettings()
    for f in fields(ClientSettings):
        variable = f"RECONCILER_{f.name.upper()}"
        assert variable in table, f"{variable} is missing from the README's Client settings"
        default = getattr(defaults, f.name)
        shown = table[variable]
        if isinstance(default, str):
            assert shown == (default or "(none)"), variable  # RECONCILER_LOG: off
        else:
            assert float(shown.replace(",", "")) == default, (variable, shown, default)


def test_a_pacing_rate_below_one_request_a_window_is_paced_not_unlimited() -> None:
    """RECONCILER_USER_READS_PER_SECOND=0.1 (the route model takes it as 10 s a read) made
    the limiter's int(0.1) = 0, which paces nothing: every read went at once."""
    from reconciler.iterable.ratelimit import SlidingWindow

    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    settings = ClientSettings.from_env({"RECONCILER_USER_READS_PER_SECOND": "0.1"})
    limiter = SlidingWindow(settings.user_reads_per_second, 1.0, lambda: now[0], sleep)
    sent = []
    for _ in range(3):
        with limiter.acquire():
            sent.append(now[0])
    assert sent == [1000.0, 1010.0, 1020.0]


def test_a_count_given_a_fraction_is_told_it_must_be_a_whole_number() -> None:
    """RECONCILER_MAX_RETRIES=1.5 was told "must be a number": 1.5 is one."""
    with pytest.raises(
        ConfigError,
        match=r"RECONCILER_MAX_RETRIES must be a whole number from 0 to 1000000000; got '1.5'",
    ):
        ClientSettings.from_env({"RECONCILER_MAX_RETRIES": "1.5"})
    with pytest.raises(
        ConfigError, match=r"RECONCILER_TIMEOUT must be a number of seconds above 0 .*; got 'soon'"
    ):
        ClientSettings.from_env({"RECONCILER_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    ("variable", "raw", "said"),
    [
        ("RECONCILER_TIMEOUT", "1e10", "must be .* at most 1000000000"),
        ("RECONCILER_READ_LAG", "1e300", "must be .* to 1000000000"),
        (
            "RECONCILER_LIST_READ_CONCURRENCY",
            "99999999999999999999999",
            "must be a whole number from 1 to 1000000000",
        ),
        ("RECONCILER_EXPORT_WINDOW_DAYS", "1000000000", "must be .* at most 36500"),
        ("RECONCILER_LIST_READS_PER_MINUTE", "1e-9", "must be 0 or at least 0.001"),
        ("RECONCILER_TIME_SCALE", "1e-300", "must be a number from 0.001 to 1000000000"),
    ],
)
def test_a_value_too_large_for_the_waits_it_makes_is_refused_naming_the_variable(
    variable: str, raw: str, said: str
) -> None:
    """RECONCILER_TIMEOUT=1e10, RECONCILER_READ_LAG=1e300 or a pacing rate of 1e-9 a minute
    were accepted, then every plan ended with "internal error: OverflowError: timestamp out
    of range for platform time_t" (a socket timeout or a sleep longer than the operating
    system takes); a list-read concurrency of 1e23 did the same in the route model."""
    with pytest.raises(ConfigError, match=rf"^{variable} {said}; got '{re.escape(raw)}'$"):
        ClientSettings.from_env({variable: raw})


def test_the_largest_values_accepted_work_against_a_real_server(emulator_server) -> None:
    """The bounds are where the waits still fit: a request with the largest timeout and a
    read route chosen with the largest concurrency both work."""
    from reconciler.iterable.client import IterableClient
    from reconciler.state.routes import choose_member_read
    from tests.conftest import EMULATOR_API_KEY

    largest = ClientSettings.from_env(
        {
            "RECONCILER_TIMEOUT": "1000000000",
            "RECONCILER_BULK_READ_TIMEOUT": "1000000000",
            "RECONCILER_LIST_READ_CONCURRENCY": "1000000000",
            "RECONCILER_EXPORT_WINDOWS_IN_FLIGHT": "1000000000",
            "RECONCILER_LIST_READS_PER_MINUTE": "0.001",
            "RECONCILER_TIME_SCALE": "0.001",
        }
    )
    with IterableClient(emulator_server.base_url, EMULATOR_API_KEY, settings=largest) as client:
        assert client.get_lists() == []
    assert choose_member_read([5, 7, 2_000_000], largest).name in {
        "getUsers",
        "export",
        "asyncExport",
        "windowedExport",
    }
