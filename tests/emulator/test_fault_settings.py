"""Faults.update: which values each fault setting takes, and the message for one it refuses.

The table pins, for every setting, which of a fixed set of probe values it accepts (the
others are refused with "invalid value for fault setting NAME: VALUE (it takes ...)"), so
the checks can be rearranged without any setting taking or refusing a value it did not
before.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from reconciler.emulator import Faults

NAN = float("nan")
INF = float("inf")
# Over a year of seconds (MAX_KNOB_SECONDS): a rate or a count, never a duration.
BIG = 1e12
PROBES: list[Any] = [
    *(0, 1, -1, 400, 600, 2.5, -2.5, NAN, INF, -INF, BIG, True, None),
    *("x", "spec", "queue", "blank", "html"),
    *([], [1, -2], [100, 599], [600], ["a"], ["bom", "cr"], ["bogus"]),
]
WHOLE = [0, 1, 400, 600]
NON_NEGATIVE = [0, 1, 400, 600, 2.5]
POSITIVE_OR_NONE = [1, 400, 600, 2.5, BIG, None]
# Infinity and durations past a year made waits that overflow: every answer a traceback.
SECONDS_OR_NONE = [1, 400, 600, 2.5, None]

ACCEPTED: dict[str, list[Any]] = {
    "fail_every": WHOLE,
    "fail_status": WHOLE,
    "script": [[], [100, 599]],
    "latency_seconds": NON_NEGATIVE,
    "latency_every": WHOLE,
    "drop_every": WHOLE,
    "bad_body_every": WHOLE,
    "bad_body": ["html"],
    "write_rate_per_second": POSITIVE_OR_NONE,
    "retry_after": [True],
    "paths": [None, [], ["a"], ["bom", "cr"], ["bogus"]],
    "fresh_list_rejects": WHOLE,
    "echo_api_key": [True],
    "fail_message": [None, "x", "spec", "queue", "blank", "html"],
    "echo_request": [True],
    "fresh_list_seconds": NON_NEGATIVE,
    "absent_channel_unsubscribe_is_true": [True],
    # Either way from the machine's clock; NaN would stamp no time at all.
    "clock_offset_seconds": [0, 1, -1, 400, 600, 2.5, -2.5],
    "read_lag_seconds": NON_NEGATIVE,
    "counts_only_answers": [True],
    "type_mismatch_rejects_request": [True],
    "phone_number_e164_only": [True],
    "unknown_user_id_answer": ["blank"],
    "list_description_max": POSITIVE_OR_NONE,
    "get_users_first_byte_seconds": NON_NEGATIVE,
    "get_users_members_per_second": POSITIVE_OR_NONE,
    "export_first_byte_seconds": NON_NEGATIVE,
    "export_members_per_second": POSITIVE_OR_NONE,
    "get_users_stream_seconds": SECONDS_OR_NONE,
    "export_stream_seconds": SECONDS_OR_NONE,
    "events_stream_lines": POSITIVE_OR_NONE,
    "streams_to_cut": WHOLE,
    "failing_list_ids": [[], [1, -2], [100, 599], [600]],
    "failing_list_status": [400],
    "get_users_rewrites": [[], ["bom", "cr"]],
    "list_name_rewrites": [[]],
    "export_job_queue_seconds": NON_NEGATIVE,
    "export_job_members_per_second": POSITIVE_OR_NONE,
    "export_file_bytes": [1, 400, 600],
    "export_max_bytes": [1, 400, 600],
    "export_files_per_page": [1, 400, 600],
    "export_link_seconds": [1, 400, 600, 2.5],
    "export_jobs_to_restart": WHOLE,
    "export_restart_resets_files": [True],
    "export_jobs_to_fail": WHOLE,
    "export_job_state_case": ["spec"],
    "export_words": [None, "x", "spec", "queue", "blank", "html"],
    "export_excess_jobs": ["queue"],
}


def test_every_setting_is_in_the_table() -> None:
    assert sorted(ACCEPTED) == sorted(f.name for f in fields(Faults))


@pytest.mark.parametrize("name", sorted(f.name for f in fields(Faults)))
def test_every_setting_takes_its_own_default(name: str) -> None:
    """clock_offset_seconds, which README says `--fault` and POST /_emulator/faults set,
    had no check and so refused every value, its default 0.0 too."""
    faults = Faults()
    faults.update({name: getattr(Faults(), name)})
    assert faults.to_json() == Faults().to_json()


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_which_values_a_setting_takes(name: str) -> None:
    accepted = []
    for probe in PROBES:
        try:
            Faults().update({name: probe})
        except ValueError as refused:
            assert str(refused).startswith(f"invalid value for fault setting {name}: {probe!r} (")
        else:
            accepted.append(probe)
    assert accepted == ACCEPTED[name]


@pytest.mark.parametrize(
    ("name", "value", "takes"),
    [
        ("export_file_bytes", 0, "a whole number, 1 or more"),
        ("latency_seconds", -1, "a number of seconds, 0 to 31,622,400"),
        ("clock_offset_seconds", BIG, "a number of seconds, -31,622,400 (behind) to 31,622,400"),
        (
            "get_users_stream_seconds",
            0,
            "null (off) or a number of seconds more than 0, at most 31,622,400",
        ),
        ("failing_list_status", 200, "an HTTP error status, 400 to 599"),
        ("export_excess_jobs", "wait", "one of reject, queue"),
        ("get_users_rewrites", ["lf"], "a list, each one of bom, crlf, cr, blank_lines"),
        ("retry_after", 1, "true or false"),
    ],
)
def test_a_refused_value_is_told_what_the_setting_takes(name: str, value: Any, takes: str) -> None:
    """`invalid value for fault setting export_file_bytes: 0` said nothing of what would do."""
    with pytest.raises(ValueError) as refused:
        Faults().update({name: value})
    assert (
        str(refused.value)
        == f"invalid value for fault setting {name}: {value!r} (it takes {takes})"
    )
