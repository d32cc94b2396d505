"""The retry lines of a destination: the first said whole, the rest counted a minute at a
time, so a failing Iterable cannot fill a CI log (reconciler/iterable/retry_notices.py)."""

from __future__ import annotations

from reconciler.iterable.retry_notices import RetryNotices


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_after_the_first_retries_a_line_a_minute_counts_the_others_by_reason():
    said: list[str] = []
    clock = Clock()
    notices = RetryNotices(said.append, clock, listed=2)
    for i in range(2):
        notices.retry(f"retry {i}", "HTTP 503")
    assert said == ["retry 0", "retry 1", said[2]]
    assert said[2].startswith("further retries are counted, not listed")
    # A second a retry for three minutes: a count line a minute, not 180 lines.
    for second in range(180):
        clock.now = 1.0 + second
        notices.retry("hidden", "HTTP 500" if second % 3 else "timed out")
    notices.close()
    counts = said[3:]
    assert "hidden" not in said
    assert len(counts) == 3  # one a minute (each ends with the retry past it), one at the close
    assert counts[0] == "61 more retries in 1 min 00 s, not listed: HTTP 500 (40), timed out (21)"
    assert sum(int(line.split()[0]) for line in counts) == 180 == notices.unlisted


def test_reasons_beyond_the_three_commonest_are_counted_as_other():
    said: list[str] = []
    notices = RetryNotices(said.append, Clock(), listed=0)
    for reason, n in (("a", 4), ("b", 3), ("c", 2), ("d", 1), ("e", 1)):
        for _ in range(n):
            notices.retry("hidden", reason)
    notices.close()
    assert said[-1] == "11 more retries in 0.0 s, not listed: a (4), b (3), c (2), other (2)"


def test_every_retry_is_said_when_every_request_is_logged():
    said: list[str] = []
    notices = RetryNotices(said.append, Clock(), every=True, listed=2)
    for i in range(50):
        notices.retry(f"retry {i}", "HTTP 503")
    notices.close()
    assert said == [f"retry {i}" for i in range(50)]
