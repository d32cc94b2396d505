"""How members are read: getUsers per list (several in flight), one user export, or one
asynchronous export job, chosen by the time each is modelled to take.

Its own module because two readers ask it: state/live.py, and the member engine's
prefetch (members/engine/prefetch.py), which live.py reaches through the member model;
kept in live.py, the two would import each other."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.iterable.settings import ClientSettings
from reconciler.progress import duration
from reconciler.words import quantity

if TYPE_CHECKING:
    from reconciler.iterable.client import IterableClient


@dataclass(frozen=True)
class MemberRoute:
    """How a destination's list members are read, and why (said in the plan)."""

    name: str  # "getUsers" or "export"
    reason: str = ""
    seconds: float = 0.0  # the modelled time of the route chosen


# How much faster an export's modelled time must be to be chosen over getUsers: an
# export reads the whole project, whose size is unknown (its modelled time is a lower
# bound). With more lists than one minute's getUsers budget, getUsers is paced and the
# export wins clearly; with fewer, every getUsers starts at once and reads only its own
# members, so the export must be far faster (a list of millions: hours by getUsers).
EXPORT_MARGIN = 1.25
FEW_LISTS_EXPORT_MARGIN = 5.0


def expected_size_checks(sizes: Sequence[int | None]) -> int:
    """How many lists/{id}/size calls a read of lists of these expected sizes will need:
    one for each list expected to read empty (size 0). An empty read may be a lagging or
    failed one, so each is checked against the list's size (state/live.py _prove_reads),
    and those calls share getUsers' budget of 5 starts a minute. Unknown sizes (None)
    count none."""
    return sum(1 for size in sizes if size == 0)


def _paced_start(index: int, settings: ClientSettings) -> float:
    """When the index-th start of the getUsers budget (getUsers and lists/{id}/size) can
    be made: list_reads_per_minute starts a minute, a start's slot freed a minute after
    its answer began."""
    per_minute = int(settings.list_reads_per_minute)
    if per_minute <= 0:
        return 0.0
    scale = settings.time_scale
    return (index // per_minute) * (60.0 / scale + settings.bulk_read_first_byte / scale)


def with_size_checks(end: float, used: int, checks: int, settings: ClientSettings) -> float:
    """The time a read that ends at `end`, having made `used` starts of the getUsers
    budget, has proven its `checks` empty lists: their size calls follow the read, one
    after another (each short), paced with the starts before them. Counted in every
    route's time: the 5th start of a minute is free, the 6th waits for the next minute."""
    for index in range(used, used + checks):
        end = max(end, _paced_start(index, settings))
    return end


def get_users_seconds(
    sizes: Sequence[int], settings: ClientSettings, size_checks: int = 0
) -> float:
    """Modelled time to read lists of these sizes with getUsers, largest first, as many in
    flight as settings.list_read_concurrency, starts paced at list_reads_per_minute (a
    start's slot frees a minute after its answer began): the time the last one ends, and
    then `size_checks` lists/{id}/size calls from the same budget. The pacing, not the
    streams, is what makes many small lists slow."""
    scale = settings.time_scale
    rate = settings.get_users_rate * scale or float("inf")
    first_byte = settings.bulk_read_first_byte / scale
    per_minute = int(settings.list_reads_per_minute)
    # When each stream frees. No more streams than lists are ever used: one per concurrent
    # read allocated 8 GB for RECONCILER_LIST_READ_CONCURRENCY=1000000000.
    free_at = [0.0] * max(1, min(int(settings.list_read_concurrency), len(sizes)))
    end = 0.0
    for i, size in enumerate(sorted(sizes, reverse=True)):
        paced = (i // per_minute) * (60.0 / scale + first_byte) if per_minute > 0 else 0.0
        slot = min(range(len(free_at)), key=free_at.__getitem__)
        start = max(paced, free_at[slot])
        free_at[slot] = start + first_byte + size / rate
        end = max(end, free_at[slot])
    return with_size_checks(end, len(sizes), size_checks, settings)


def export_seconds(sizes: Sequence[int], settings: ClientSettings, size_checks: int = 0) -> float:
    """Modelled time of one user export: it streams every user of the project, at least
    every member of these lists (the project's other users are unknown here, which makes
    this a lower bound: the export is favoured when the lists hold most of the project),
    then `size_checks` lists/{id}/size calls."""
    rate = settings.export_rate * settings.time_scale or float("inf")
    end = settings.bulk_read_first_byte / settings.time_scale + sum(sizes) / rate
    return with_size_checks(end, 0, size_checks, settings)


def export_job_seconds(
    sizes: Sequence[int], settings: ClientSettings, size_checks: int = 0
) -> float:
    """Modelled time of one asynchronous export job: its time in Iterable's queue, then
    its users at the job's rate (the same lower bound as export_seconds), its files
    fetched in parallel as they are listed, and a look at its files to see it end; then
    `size_checks` lists/{id}/size calls."""
    scale = settings.time_scale
    rate = settings.export_job_rate * scale or float("inf")
    end = (settings.export_job_queue + settings.export_poll) / scale + sum(sizes) / rate
    return with_size_checks(end, 0, size_checks, settings)


# The windowed export's modelled time assumes profiles spread evenly over its windows and
# Iterable streaming several exports at once at full rate each (neither is published): it
# must beat the asynchronous export, the route Iterable documents for large exports, by
# this much to be chosen.
WINDOWS_MARGIN = 2.0


def windowed_export_seconds(
    sizes: Sequence[int], settings: ClientSettings, size_checks: int = 0
) -> float:
    """Modelled time of the synchronous export read in date windows (state/windows.py):
    windows of what one stream carries before Iterable closes it (with room to be
    uneven), as many in flight as settings.export_windows_in_flight, starts paced at
    exports_per_minute, then the open window (profiles updated during the read) alone,
    then `size_checks` lists/{id}/size calls. The same lower bound as export_seconds: the
    project's other users are unknown."""
    from reconciler.state.windows import window_count

    scale = settings.time_scale
    rate = settings.export_rate * scale or float("inf")
    first_byte = settings.bulk_read_first_byte / scale
    total = sum(sizes)
    count = window_count(total, settings)
    per_minute = int(settings.exports_per_minute)
    free_at = [0.0] * max(1, min(int(settings.export_windows_in_flight), count))
    end = 0.0
    for i in range(count):
        paced = (i // per_minute) * (60.0 / scale + first_byte) if per_minute > 0 else 0.0
        slot = min(range(len(free_at)), key=free_at.__getitem__)
        start = max(paced, free_at[slot])
        free_at[slot] = start + first_byte + total / count / rate
        end = max(end, free_at[slot])
    paced = (count // per_minute) * 60.0 / scale if per_minute > 0 else 0.0
    return with_size_checks(max(end, paced) + first_byte, 0, size_checks, settings)


def choose_member_read(
    sizes: Sequence[int | None], settings: ClientSettings, size_checks: int = 0
) -> MemberRoute:
    """getUsers per list (several in flight, 5 starts a minute) or one user export for
    every list (4 a minute): the one modelled to finish first, from the lists' expected
    sizes (their audiences' sizes, a free and close guess: a plan's list is rarely far
    from its audience; asking Iterable, lists/{id}/size, costs a getUsers start each).
    An export modelled to outlast settings.export_stream_limit is not chosen: Iterable
    closes long export connections. Unknown sizes (None) fall back to counting calls:
    getUsers while every list fits in one minute's budget, else the export.

    `size_checks` lists/{id}/size calls are expected after the read, whichever it is
    (expected_size_checks: the lists expected to read empty, each proven by its size):
    they share getUsers' budget, so counted in every route's time, they keep a plan the
    model judged to fit in one minute's budget from waiting for the next."""
    forced = settings.member_reads
    if forced != "auto":
        return MemberRoute(forced, f"{forced} as RECONCILER_MEMBER_READS says")
    budget = settings.list_reads_per_minute
    if not sizes:
        return MemberRoute("getUsers")
    if any(size is None for size in sizes):
        if budget > 0 and len(sizes) > budget:
            return MemberRoute(
                "export", f"one export rather than {len(sizes):,} getUsers at {budget:g} a minute"
            )
        return MemberRoute("getUsers")
    known = [int(size or 0) for size in sizes]
    checks = size_checks
    by_get_users = get_users_seconds(known, settings, checks)
    by_export = export_seconds(known, settings, checks)
    by_job = export_job_seconds(known, settings, checks)
    # By the lists alone: with a few, the size checks' wait is at most a minute, and the
    # export (of a project of unknown size) must still win by far.
    margin = EXPORT_MARGIN if budget > 0 and len(known) > budget else FEW_LISTS_EXPORT_MARGIN
    stream_limit = settings.export_stream_limit / settings.time_scale
    by_windows = windowed_export_seconds(known, settings, checks)
    starts = _starts(len(known), checks, budget)
    if (
        stream_limit > 0
        and by_export > stream_limit
        and by_windows * WINDOWS_MARGIN < by_job
        and by_windows * margin < by_get_users
    ):
        return MemberRoute(
            "windowedExport",
            f"chosen as faster: about {duration(by_windows)} by the user export in date "
            f"windows against {duration(by_job)} by one asynchronous export job and "
            f"{duration(by_get_users)} by getUsers; one user export would take "
            f"{duration(by_export)} or more, longer than the {duration(stream_limit)} "
            "Iterable lets an export stream",
            by_windows,
        )
    if by_job < by_export and by_job * margin < by_get_users:
        return MemberRoute(
            "asyncExport",
            f"chosen as faster: about {duration(by_job)} by one asynchronous export job "
            f"against {duration(by_export)} by one user export and {duration(by_get_users)} "
            f"by getUsers ({starts})",
            by_job,
        )
    stream_limit = settings.export_stream_limit / settings.time_scale
    too_long = stream_limit > 0 and by_export > stream_limit
    # The export's time is a lower bound (the project's other users are unknown), so it
    # must win clearly, not by a first byte's worth on a few small lists.
    if by_export * margin < by_get_users and not too_long:
        return MemberRoute(
            "export",
            f"chosen as faster: about {duration(by_export)} by one user export against "
            f"{duration(by_get_users)} by getUsers ({starts})",
            by_export,
        )
    if len(known) == 1 and not too_long:
        return MemberRoute("getUsers", "", by_get_users)
    if too_long:
        why = (
            f"{duration(by_export)} or more by one user export, longer than the "
            f"{duration(stream_limit)} Iterable lets an export stream"
        )
    else:
        why = f"{duration(by_export)} or more by one user export of {sum(known):,} members"
    return MemberRoute(
        "getUsers",
        f"chosen: about {duration(by_get_users)} by getUsers against {why}",
        by_get_users,
    )


def _starts(lists: int, checks: int, budget: float) -> str:
    """What getUsers would start, as a plan says it: "4 lists, 5 starts a minute", with
    the size checks of lists expected to read empty when there are any."""
    text = quantity(lists, "list")
    if checks:
        text += f" and {checks:,} size check{'s' if checks != 1 else ''} of lists expected empty"
    return f"{text}, {budget:g} starts a minute"


def choose_route(
    sizes: Sequence[int | None],
    settings: ClientSettings,
    member_reads: str | None = None,
    size_checks: int | None = None,
) -> MemberRoute:
    """choose_member_read, or with `member_reads` "export" (a saved plan's stale check: one
    read for every list) the faster of the two exports whatever the lists' number; another
    `member_reads` is taken as it is. Unknown sizes (None) count as 0 there.
    `size_checks` None: the lists expected to read empty (expected_size_checks), as a plan's
    read proves them."""
    checks = expected_size_checks(sizes) if size_checks is None else size_checks
    route = choose_member_read(sizes, settings, checks)
    # The export in date windows, when chosen, is the fastest one read of every list too.
    if member_reads == "export" and route.name not in ("export", "asyncExport", "windowedExport"):
        known = [int(size or 0) for size in sizes]
        by_export = export_seconds(known, settings, checks)
        job = export_job_seconds(known, settings, checks) < by_export or (
            settings.export_stream_limit > 0
            and by_export > settings.export_stream_limit / settings.time_scale
        )
        return MemberRoute("asyncExport" if job else "export", "one read for every list")
    if member_reads is not None and member_reads != "export":
        return MemberRoute(member_reads, "")
    return route


def get_users_if_cut_off(route: MemberRoute, client: IterableClient) -> MemberRoute:
    """`route`, or where it is one user export of a project whose whole export this run
    has seen cut off (client.whole_export_cut_off), getUsers at once, its reason saying
    why. A project too big for one stream is so for the whole run: the export would be
    cut off on each of its 4 tries (against Iterable, up to half an hour each), and the
    lists then read with getUsers all the same. Not date windows: chosen once the sources
    are read, they would be a pass over the whole project of this read's own (in a test,
    20 window requests where getUsers made 1), while the project's later reads take the
    file its other reads made, or go to windows, as after the cut."""
    if route.name != "export" or not client.whole_export_cut_off:
        return route
    said = "read with getUsers at once, a whole user export of the project being cut off "
    said += "earlier in this run"
    return MemberRoute("getUsers", "; ".join(x for x in (route.reason, said) if x))


def size_empty_lists(
    client: IterableClient,
    lists: Sequence[tuple[int, int | None]],
    member_reads: str | None,
    skip: Callable[[Exception], bool],
    known: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Iterable's size (`lists/{id}/size`) of each list whose audience is empty (`lists`:
    list id and expected size), by list id, when the route is the model's to choose: the
    route is then chosen from what the list holds, not read a list of 50,000 by getUsers
    (minutes) only for the empty-source guard to block the plan. Only these lists: each
    size is a start of getUsers' budget of 5 a minute, and a list read empty is checked
    against its size anyway (state/live.py _prove_reads takes the size asked here). Sizes
    in `known` (asked before) are kept, not asked again. A size whose failure `skip`
    accepts is left out: the route is chosen as before, and the read proves itself."""
    sized = dict(known or {})
    if member_reads is not None or client.settings.member_reads != "auto":
        return sized
    for list_id, size in lists:
        if size != 0 or list_id in sized:
            continue
        try:
            sized[list_id] = client.list_size(list_id)
        except Exception as exc:
            if not skip(exc):
                raise
    return sized


def with_sized(route: MemberRoute, sized: int) -> MemberRoute:
    """`route`, its reason saying the empty audiences' lists were sized to choose it."""
    note = f"chosen after asking the size of {quantity(sized, 'list')} of empty audiences"
    reason = "; ".join(x for x in (route.reason, note) if x)
    return MemberRoute(route.name, reason, route.seconds)
