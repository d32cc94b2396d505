"""Plans and apply reports for people (text, markdown) and machines (JSON).

Every renderer takes `show_members`: False (the default everywhere) masks member
identifiers, because plans are posted where many people read them (reconciler.render.masking).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import jinja2

from reconciler.layout import one_line
from reconciler.members.identity import Member, ProjectType
from reconciler.plan import (
    CampaignUse,
    DestinationPlan,
    FieldUpdate,
    ListDeletion,
    ListPlan,
    Plan,
    Violation,
)
from reconciler.plan.policy import RULE_FLAGS
from reconciler.render.cut import cut_markdown
from reconciler.render.json_text import json_text
from reconciler.render.masking import (
    Show,
    field_path,
    mask_emails,
    mask_value,
    quoted,
    reveal,
    shower,
)
from reconciler.words import quantity

if TYPE_CHECKING:
    # Named in annotations only: plan and validate start without the executor (issue 17).
    from reconciler.apply.executor import ApplyReport, ListResult
    from reconciler.apply.held_back import HeldBack

SAMPLE = 10
SKIPPED_SAMPLE = 20
# What overrides each kind of violation on the apply command line.
OVERRIDES = {
    **RULE_FLAGS,
    "active_campaign_adds": "--allow-unsafe",
    "empty_source": "allowEmpty: true",
    "bounds": "widen minMembers/maxMembers",
    "additions": "raise maxAdditionPercent/maxAdditions",
}
# GitHub rejects comments over 65,536 characters: a plan for a comment (stdout) is kept
# below it, leaving room for the comment's marker and footer.
MARKDOWN_LIMIT = 60_000
# A job summary takes up to 1 MiB per step, and apply's step appends its report after the
# plan: the plan gets at most 800 KB (4 bytes a character at worst), so the summary the
# comment points to holds more than the comment.
SUMMARY_LIMIT = 200_000
# ... and apply's report after it at most 50,000 (200 KB at worst), so the two stay under
# the 1 MiB with room for the line apply adds when it stops: over it, GitHub drops the
# step's summary with an error, the plan included. A report of thousands of lists (an
# hourly sync of every audience) grows a row a list.
REPORT_SUMMARY_LIMIT = 50_000


# A way of making a plan (_Fit) or a report (_ReportFit) fit its limit.
F = TypeVar("F", "_Fit", "_ReportFit")


@dataclass(frozen=True)
class _Fit:
    """One way of rendering a plan for a size limit (plan_markdown tries them in turn)."""

    sample: int = SAMPLE  # members shown per list and kind
    skipped_sample: int = SKIPPED_SAMPLE  # skipped rows, value issues, duplicates shown
    hide_quiet: bool = False  # rows of lists with nothing to do or note: counted in one row
    # Every campaign using a changed or deleted list, or only those a warning is about
    # (the rest counted per list): a list mailed weekly for years is used by hundreds of
    # finished campaigns, which listed for each of a few dozen lists filled the comment.
    all_campaigns: bool = True
    # Rows of lists whose row says nothing but its counts (None: all shown): only the
    # first this many of each destination, the rest counted with their sums in one row,
    # so that hundreds of lists a data refresh changes cannot push out what the rest of
    # the plan must say (another destination, a list prune deletes, consent holds, notes).
    routine_rows: int | None = None
    # The safety policy's violations (and overrides) listed atop the plan (None: all),
    # the rest counted by rule: 400 lists prune would delete, each blocked, pushed the
    # summary line and the tables out of the comment.
    violation_rows: int | None = None
    # A destination's notes shown (None: all), the rest counted: 200 audience keys renamed
    # at once make a note of about 420 characters on each old list.
    note_rows: int | None = None


# How a plan too long for its limit is made to fit, tried in turn: first the rows of lists
# with nothing to do or note are left out (counted in one row), so the lists a pull
# request changes are neither cut off among thousands it does not change nor shown
# without their samples for them; then the campaigns no warning is about are counted
# instead of listed; then smaller member samples per list, keeping every remaining row,
# warning and destination; then the first VIOLATION_ROWS violations of the safety policy
# (the rest counted by rule); then as many rows of lists that only add and remove as fit
# (plan_markdown finds how many); then the first NOTE_ROWS notes of each destination.
VIOLATION_ROWS = 20
NOTE_ROWS = 20
_FITS = (
    _Fit(),
    _Fit(hide_quiet=True),
    _Fit(hide_quiet=True, all_campaigns=False),
    _Fit(3, 5, True, False),
    _Fit(1, 1, True, False),
    _Fit(0, 0, True, False),
    _Fit(0, 0, True, False, violation_rows=VIOLATION_ROWS),
    _Fit(0, 0, True, False, routine_rows=0, violation_rows=VIOLATION_ROWS),
    _Fit(0, 0, True, False, routine_rows=0, violation_rows=VIOLATION_ROWS, note_rows=NOTE_ROWS),
)


def _shown(value: Any) -> Any:
    """Every value a template prints, on one line and visible (reconciler.layout.one_line).
    Manifest names are refused with such characters, but much of what a plan or report
    shows is Iterable's text, which anyone with access to the project (or its API) writes:
    the name of a list prune deletes, a profile's field value, an error message. Printed as
    it was, a newline in it started a line of its own in a CI log (a `::` workflow
    command, a forged summary) and a carriage return or an escape sequence rewrote the line
    in a terminal."""
    return one_line(value) if isinstance(value, str) else value


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("reconciler.render", "templates"),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # plain text and markdown, not HTML
    finalize=_shown,
)
# Counts with thousands separators (10,000), in every format people read.
_env.filters["num"] = lambda n: f"{n:,}"


def _list_ref(lp: ListPlan) -> str:
    return f" (list {lp.list_id})" if lp.list_id is not None else " (new list)"


def _identity_label(show: Show) -> Any:
    """How a member, or a user whose fields change, is named: the one place identifiers
    are shown, so masking applies to both alike. As apply sends it: a hybrid project's
    member by its userId and its email, a userID-based project's by its userId alone
    (apply.executor.subscriber_payload): an email shown there is never sent, and read as
    one that would be."""

    def label(who: Member | FieldUpdate, project_type: ProjectType) -> str:
        if who.key_kind == "userId" and who.email is not None and project_type == "hybrid":
            return f"{show(who.key)} <{show(who.email)}>"
        return show(who.key)

    return label


def _field_value(show: Show) -> Any:
    def value_text(value: Any) -> str:
        """A field value as a plan shows it: JSON (masked like identifiers), cut short."""
        text = json.dumps(mask_value(value, show), ensure_ascii=False, default=str)
        return text if len(text) <= 60 else text[:57] + "..."

    return value_text


def _new_fields(show: Show) -> Any:
    """A destination's new user fields as people read them: under each top-level field
    the first SAMPLE paths (masked as field_path masks them), then how many more. An
    object keyed per member makes a field of every key: thousands of them listed filled
    the pull-request comment. Each item is (path, type, more): `more` paths after it
    under its top-level field are not shown."""

    def new_fields(d: DestinationPlan) -> list[tuple[str, str, int]]:
        by_root: dict[str, list[tuple[str, str]]] = {}
        for path, kind in d.new_fields:
            by_root.setdefault(path.split(".", 1)[0], []).append((path, kind))
        items = []
        for paths in by_root.values():
            shown = paths[:SAMPLE]
            for n, (path, kind) in enumerate(shown):
                more = len(paths) - len(shown) if n == len(shown) - 1 else 0
                items.append((field_path(path, show), kind, more))
        return items

    return new_fields


def _with_field_names(lp: ListPlan) -> str:
    """` with fields a, b` for the fields the list's subscribes carry, or nothing when none
    is left (two audiences disagreeing on every field keep them all out of the adds)."""
    names = sorted({name for values in lp.add_fields.values() for name in values})
    return " with fields " + ", ".join(names) if names else ""


def _one_line(text: str) -> str:
    """Control characters, bidirectional overrides and invisible characters as escapes (a
    newline as `\\n`, reconciler.layout.one_line): a name then stays on its line, where it
    cannot end a table row or a code block and start markdown of its own (a forged "no
    changes", an HTML comment hiding the rest), nor reorder what follows it."""
    return one_line(text)


def _md(text: str) -> str:
    """Escape what would break a markdown table cell or start markup. An `@` before a
    letter or digit is followed by a zero-width space: GitHub reads `@team` in a comment's
    text as a mention (a backslash does not stop it) and notifies them each time the plan
    is posted, after any character but an ASCII letter, digit or `_` (`café@team` too:
    its pattern's `\\W` is ASCII's, where Python's `\\w` takes `é`), and makes a mailto:
    link of an address (`admin@evil.example`) in it.
    So is the `#` of an issue reference (`#123`, `GH-123`, `owner/repo#123`): each post of
    the plan would add "mentioned this" to that issue or pull request, here or in
    another repository. A web address (`https://...`, `www....`) gets one too, where GitHub
    would start a link of it: a name then cannot put a working link into what the bot posts
    ("Approve at https://..."). `$` and `~` are escaped: GitHub draws `$...$` as math and
    strikes `~~...~~` through."""
    text = _one_line(text)
    for ch in "\\|*_`<>[]&$~":
        text = text.replace(ch, "\\" + ch)
    # References first: the entity the mention gets holds a `#` before digits itself.
    text = _ISSUE_REFERENCE.sub(r"\1&#8203;", text)
    text = _AUTOLINK.sub("&#8203;", text)
    return re.sub(r"@(?=\w)", "@&#8203;", text)


# What GitHub links as a reference to an issue or pull request: `#` or `GH-` before its number.
# (GitHub's word characters are ASCII's: `éGH-7` is a reference too.)
_ISSUE_REFERENCE = re.compile(r"(#|(?<![A-Za-z0-9_-])GH-)(?=\d)", re.IGNORECASE)
# Where GFM's extended autolinks start a link: the `://` after a scheme, the `.` after `www`.
_AUTOLINK = re.compile(r"(?<=[a-z])(?=://)|(?<=(?<![\w-])www)(?=\.)", re.IGNORECASE)


def _code(text: str) -> str:
    """`text` as an inline code span (no markup, links or mentions) that a backtick in it
    cannot end early: the fence is one backtick longer than its longest run."""
    text = _one_line(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# A code span of the plan's own words in a note (`prune: true`, `reconciler import`), as
# _md escaped it. Its content holds no quote, backslash or entity: a span from a list name's
# backtick (names are quoted, repr's ' or ") to one of ours would cross a quote, and one
# inside a name is as harmless as ours (GitHub makes no link or mention in code).
_ESCAPED_OWN_CODE = re.compile(r"\\`([A-Za-z][A-Za-z0-9 .:-]{0,40})\\`")


def _md_note(text: str) -> str:
    """A note as markdown: escaped as _md escapes, but the code spans in the plan's own
    wording kept as code (escaped, they showed as \\`prune: true\\` in the raw text)."""
    return _ESCAPED_OWN_CODE.sub(r"`\1`", _md(text))


_env.filters["md"] = _md


def markdown_cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return _md(text)


def _notes(lp: ListPlan) -> str:
    """A list's notes column: whether it is created, the share it removes, then its remarks."""
    notes = ["create list"] if lp.create else []
    if lp.remove:
        notes.append(f"removes {lp.removal_percent:.1f}%")
    return ", ".join(notes + _remarks(lp))


def _remarks(lp: ListPlan) -> list[str]:
    """What a list's row says beyond its counts: members kept, held back or left out, and
    settings that change what its adds and removals do."""
    notes = []
    if lp.kept_for_skipped:
        notes.append(f"{lp.kept_for_skipped:,} kept: rows skipped as invalid stand for them")
    if lp.kept_respelled:
        notes.append(f"{lp.kept_respelled:,} kept: Iterable has their address in another spelling")
    if lp.kept_email_changed:
        notes.append(
            f"{lp.kept_email_changed:,} kept: Iterable has their userId under another email"
        )
    if lp.held_back_removals:
        notes.append(f"{quantity(lp.held_back_removals, 'removal')} held back (removals: never)")
    if lp.campaign_id is not None and lp.remove:
        # The removals count as unsubscribes in this campaign's metrics.
        notes.append(f"removals attributed to campaignId {lp.campaign_id}")
    if lp.channel_unsubscribe and lp.remove:
        notes.append("**channelUnsubscribe**")
    if lp.update_existing_users_only and lp.add:
        notes.append("existing users only")
    if lp.forgotten:
        notes.append(f"{len(lp.forgotten):,} forgotten in Iterable, not sent")
    if lp.not_created:
        notes.append(f"{len(lp.not_created):,} not created (updateExistingUsersOnly)")
    if lp.left_themselves:
        notes.append(f"{len(lp.left_themselves):,} held back: left the list themselves")
    if lp.channel_unsubscribed:
        notes.append(f"{len(lp.channel_unsubscribed):,} held back: unsubscribed from the channel")
    if lp.resubscribe_allowed and lp.add:
        notes.append("**resubscribe: allowed**")
    return notes


def _sources(lp: ListPlan | HeldBack) -> str:
    """How the held-back members left, by Iterable's unsubSource: "EmailLink 2, WebApp 1"."""
    return ", ".join(f"{source} {count:,}" for source, count in lp.left_sources) or "source unknown"


def override_flag(v: Violation) -> str:
    """The flag of its own that overrides `v`, else --allow-unsafe: --allow-new-project
    names the destination it confirms."""
    flag = OVERRIDES.get(v.rule, "--allow-unsafe")
    return f"{flag} {v.destination}" if v.rule == "unfamiliar_project" else flag


def _policy_setting(v: Violation) -> str | None:
    """The policy key in the manifests that permits `v` for good, where its rule has a flag
    too: a reviewer of a pull request can ask for the key in it, and a merge carries no
    flag (list deletion's message names allowListDeletion itself)."""
    if v.rule != "removals":
        return None
    return "maxRemovals" if "more than maxRemovals " in v.message else "maxRemovalPercent"


def _context(plan: Plan, show_members: bool, allowed: Collection[str] = ()) -> dict[str, Any]:
    show = shower(show_members)
    violations = plan.violations()
    return {
        "plan": plan,
        "s": plan.summary,
        # `allowed`: the rules apply was told to override (--allow-removals, ...), so the
        # plan it prints says it goes ahead rather than that it is blocked.
        "violations": [v for v in violations if not v.overridden_by(allowed)],
        "overridden": [v for v in violations if v.overridden_by(allowed)],
        "override": override_flag,
        "setting": _policy_setting,
        "channel_lists": _lists_named(plan, lambda lp: lp.channel_unsubscribe and bool(lp.remove)),
        "resubscribe_lists": _lists_named(plan, lambda lp: lp.resubscribe_allowed and bool(lp.add)),
        "sample": SAMPLE,
        "skipped_sample": SKIPPED_SAMPLE,
        "show": show,
        "quoted": quoted(show),
        "member_label": _identity_label(show),
        "update_label": _identity_label(show),
        "field_value": _field_value(show),
        "with_field_names": _with_field_names,
        "new_fields": _new_fields(show),
        "list_ref": _list_ref,
        "masked": not show_members,
        "md": _md,
        "md_note": _md_note,
        "code": _code,
        "one_line": _one_line,
        # How the members and users were read quotes Iterable's answer to a read that
        # failed, whose msg may quote a member's value back.
        "message": _message(show_members),
        "notes": _notes,
        "sources": _sources,
        "hide_quiet": False,
        "is_quiet": _is_quiet,
        "all_campaigns": True,
        "routine_rows": None,
        "violation_rows": None,
        "note_rows": None,
        "by_rule": _by_rule,
        "is_routine": _routine({(v.destination, v.list_name) for v in violations}),
        "campaigns_listed": _campaigns_listed,
        "campaigns_unlisted": _campaigns_unlisted,
    }


def _routine(violated: Collection[tuple[str, str]]) -> Any:
    """Whether a list's row says nothing but its counts: not created, no remark, no
    violation of the safety policy, no campaign a warning is about. The rows a plan too big
    for a comment leaves out last (counted, with their sums, in one row)."""

    def routine(d: DestinationPlan, lp: ListPlan, warned: Collection[CampaignUse]) -> bool:
        if lp.create or _remarks(lp) or (d.destination, lp.list_name) in violated:
            return False
        return not any(c in warned for c in d.campaigns_of(lp.list_name))

    return routine


def _by_rule(violations: Sequence[Violation]) -> str:
    """How many violations of each rule: "list_deletion 380, removals 2"."""
    counts = Counter(v.rule for v in violations)
    return ", ".join(f"{rule} {count:,}" for rule, count in sorted(counts.items()))


def _lists_named(plan: Plan, which: Callable[[ListPlan], bool]) -> list[str]:
    """The names of the lists `which` picks, for a warning atop the plan: as
    `destination/list` when the plan has several destinations, which may each have a list
    of that name (regions, brands), as the safety policy's violations name them."""
    several = len(plan.destinations) > 1
    return [
        f"{d.destination}/{lp.list_name}" if several else lp.list_name
        for d in plan.destinations
        for lp in d.lists
        if which(lp)
    ]


def _is_quiet(lp: ListPlan) -> bool:
    """A list the plan does nothing to and has nothing to say about: its table row is the
    first thing a plan too big for a comment leaves out."""
    return not (lp.has_changes or lp.field_update_keys or _notes(lp))


def plan_text(plan: Plan, show_members: bool = False, allowed: Collection[str] = ()) -> str:
    return _env.get_template("plan.txt.j2").render(_context(plan, show_members, allowed))


def plan_markdown(
    plan: Plan,
    show_members: bool = False,
    allowed: Collection[str] = (),
    limit: int = MARKDOWN_LIMIT,
) -> str:
    """The plan in at most `limit` characters: without the rows of lists it does nothing
    to, with campaigns counted rather than named, with smaller member samples and with
    fewer rows of lists that only add and remove, as far as it must (_FITS), and cut (its
    open blocks closed) only if even the rest does not fit."""
    context = _context(plan, show_members, allowed)
    template = _env.get_template("plan.md.j2")
    lists = [lp for d in plan.destinations for lp in d.lists]
    quiet = any(_is_quiet(lp) for lp in lists)
    unwarned = any(
        len(_campaigns_listed(d, False)) < len(set(d.campaigns)) for d in plan.destinations
    )

    many_violations = len(plan.violations()) > VIOLATION_ROWS
    many_notes = any(len(d.notes) > NOTE_ROWS for d in plan.destinations)

    # What a plan does not have to leave out, it does not say it left out (and the text
    # would be the same as one tried before).
    fits = list(
        dict.fromkeys(
            dataclasses.replace(
                fit,
                hide_quiet=fit.hide_quiet and quiet,
                all_campaigns=fit.all_campaigns or not unwarned,
                violation_rows=fit.violation_rows if many_violations else None,
                note_rows=fit.note_rows if many_notes else None,
            )
            for fit in _FITS
        )
    )
    last = fits[-1]
    rendered: dict[_Fit, tuple[str, str]] = {}

    def render(fit: _Fit) -> tuple[str, str]:
        # A fit is rendered once: the search for the most routine rows starts from one
        # already rendered, and the last fit may be rendered early (below). Texts too long
        # are not kept (fits_in), a plan of 16,000 lists being megabytes in each.
        if fit not in rendered:
            text = template.render(
                {
                    **context,
                    "sample": fit.sample,
                    "skipped_sample": fit.skipped_sample,
                    "hide_quiet": fit.hide_quiet,
                    "all_campaigns": fit.all_campaigns,
                    "routine_rows": fit.routine_rows,
                    "violation_rows": fit.violation_rows,
                    "note_rows": fit.note_rows,
                }
            )
            rendered[fit] = (text, _fit_note(fit))
        return rendered[fit]

    too_long: set[_Fit] = set()

    def fits_in(fit: _Fit) -> bool:
        if fit in too_long:
            return False
        text, note = render(fit)
        if len(text) + len(note) + 1 <= limit:
            return True
        too_long.add(fit)
        if fit != last:  # its text is cut when none fits
            del rendered[fit]
        return False

    if not fits_in(fits[0]) and _beyond_every_fit(render(last), limit, len(plan.destinations)):
        # Far too long even with everything left out that can be, so no fit between
        # fits: cut now, after two renders rather than one per fit (six of 0.25 s each in
        # a plan of 4,000 changed lists, bench/render_plan.py).
        fits = [last]
    for fit in fits:
        if fits_in(fit):
            text, note = render(fit)
            if fit.routine_rows is not None:
                # As many of those rows as fit, by halves: a few renders, not one a row.
                fit, text, note = _most_rows(fit, render, limit, _routine_most(plan, context))
            return text + ("\n" + note if note else "")
    text, _ = render(last)
    return _truncated(text, limit, plan.destinations)


# How much longer the last fit's text (and its note) may be than another fit's of the same
# plan: where the last leaves something out it may add a line counting it (the rest of
# the violations by rule, and per destination the lists with no changes, the routine
# lists with their sums, the users to update, the skipped rows and the notes, each line a
# few dozen characters to about 200 with long counts), and its note is the longest.
_FIT_SLACK = 1_000


def _beyond_every_fit(last: tuple[str, str], limit: int, destinations: int) -> bool:
    """Whether the last fit's text and note are so far over `limit` that no other fit of
    the plan can be within it: every other fit shows all the last fit shows, bar the lines
    counting what the last leaves out (_FIT_SLACK per destination and for the plan)."""
    text, note = last
    return len(text) + len(note) + 1 > limit + _FIT_SLACK * (destinations + 1)


def _truncated(text: str, limit: int, destinations: Sequence[DestinationPlan]) -> str:
    """`text` cut to `limit`, its note naming the destinations the cut took whole (the
    tables of one destination's hundreds of lists pushed out every destination after it,
    with no word that they were there) and the lists prune deletes whose rows it took: a
    pull request adding hundreds of audiences could push the row of a list its merge
    deletes out of the comment, leaving only a count in the summary line."""
    gone: list[str] = []
    deleted: list[tuple[str, ListDeletion]] = []
    warnings = _campaign_warnings(text)
    lost = 0
    cut = text
    # A longer note may cut one more destination or deletion: until it is stable (each
    # pass cuts at least as much as the one before, so it ends).
    for _ in range(len(destinations) + 4):
        note = _cut_note(gone, deleted, lost)
        cut = cut_markdown(text, limit, note)
        kept = cut[: len(cut) - len(note)]
        missing = [d.destination for d in destinations if _heading(d) not in kept]
        # A destination's deletion rows come in its order, so the cut kept the first of them.
        unshown = [
            (d.destination, x)
            for d in destinations
            for x in d.deletions[_deletion_rows(_section(kept, d)) :]
        ]
        lost_now = warnings - _campaign_warnings(kept)
        if (missing, unshown, lost_now) == (gone, deleted, lost):
            return cut
        gone, deleted, lost = missing, unshown, lost_now
    return cut


def _cut_note(
    gone: Sequence[str], deleted: Sequence[tuple[str, ListDeletion]], warnings: int
) -> str:
    named = ", ".join(f"`{name}`" for name in gone)
    said = (
        f": the rest of the plan, destination{'s' if len(gone) != 1 else ''} {named} "
        "included, is not shown"
        if gone
        else ""
    )
    if deleted:
        listed = ", ".join(
            f"{_code(destination + '/' + x.list_name)} (list {x.list_id})"
            for destination, x in deleted[:VIOLATION_ROWS]
        )
        more = len(deleted) - VIOLATION_ROWS
        said += (
            f"; among what is not shown, {quantity(len(deleted), 'list')} prune deletes: "
            f"{listed}{f' and {more:,} more' if more > 0 else ''}"
        )
    if warnings:
        said += (
            f"; {quantity(warnings, 'campaign warning')} not shown (a campaign messaging "
            "the members a list gains, reaching those a suppression list loses, or losing "
            "its list)"
        )
    return f"_(plan truncated to fit{said}; run `reconciler plan` to see it all)_\n"


def _campaign_warnings(text: str) -> int:
    """The campaign lines of plan.md.j2 that warn: only they start with `- ` and end in bold
    (a name's `*` is escaped)."""
    return sum(line.startswith("- ") and line.endswith("**") for line in text.splitlines())


def _heading(d: DestinationPlan) -> str:
    return f"#### Destination `{d.destination}`"


def _section(text: str, d: DestinationPlan) -> str:
    """The part of `text` under `d`'s heading, up to the next destination's."""
    start = text.find(_heading(d))
    if start < 0:
        return ""
    end = text.find("\n#### Destination `", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _deletion_rows(section: str) -> int:
    """How many rows of lists prune deletes `section` holds: only theirs end so (plan.md.j2),
    and a name cannot end a line."""
    return sum(line.endswith(_DELETION_ROW_END) for line in section.splitlines())


_DELETION_ROW_END = " | | | | | **delete list** (prune) |"


def _routine_most(plan: Plan, context: dict[str, Any]) -> int:
    """The most rows of routine lists one destination of `plan` has."""
    routine = context["is_routine"]
    most = 0
    for d in plan.destinations:
        warned = _campaigns_listed(d, False)
        most = max(most, sum(routine(d, lp, warned) for lp in d.lists))
    return most


def _most_rows(
    fit: F, render: Callable[[F], tuple[str, str]], limit: int, most: int
) -> tuple[F, str, str]:
    """`fit` (which fits showing no routine row: of a plan, lists that only add and remove;
    of a report, lists done as planned) with as many routine rows per destination as still
    fit in `limit`, and its text and note: found by halves, a few renders, not one a row."""
    best = (fit, *render(fit))
    low, high = 1, most
    while low <= high:
        middle = (low + high) // 2
        # Every one of them shown is none left out: the note must not say some are.
        trial = dataclasses.replace(fit, routine_rows=middle if middle < most else None)
        text, note = render(trial)
        if len(text) + len(note) + 1 <= limit:
            best, low = (trial, text, note), middle + 1
        else:
            high = middle - 1
    return best


def _fit_note(fit: _Fit) -> str:
    """What a plan made to fit its limit left out, in one line ("" when nothing)."""
    cuts = []
    if fit.sample != SAMPLE:
        cuts.append(f"samples cut to {fit.sample} member{'s' if fit.sample != 1 else ''} a list")
    if fit.hide_quiet:
        cuts.append("lists with no changes not shown")
    if not fit.all_campaigns:
        cuts.append("campaigns listed only where they need a warning (the others counted)")
    if fit.violation_rows is not None:
        cuts.append(f"violations listed up to {fit.violation_rows}")
    if fit.routine_rows is not None:
        cuts.append("some lists with only adds and removes not shown")
    if fit.note_rows is not None:
        cuts.append(f"notes listed up to {fit.note_rows} a destination")
    if not cuts:
        return ""
    said = "; ".join(cuts)
    return f"_{said[:1].upper()}{said[1:]} to fit; `reconciler plan` shows more._\n"


def _campaigns_listed(d: DestinationPlan, every: bool) -> frozenset[CampaignUse]:
    """The campaigns a markdown plan names: all of them, or (`every` False) those it warns
    about: a suppression list's campaign when the list loses members, an active campaign
    sending to a list that gains them, an active campaign of a list prune deletes."""
    if every:
        return frozenset(d.campaigns)
    deleted = {x.list_name for x in d.deletions}
    changed = {lp.list_name: lp for lp in d.lists if lp.has_changes}
    warned = set()
    for c in d.campaigns:
        lp = changed.get(c.list_name)
        if lp is not None:
            # As DestinationPlan.suppressions and .active_sends choose them.
            if (c.role == "suppression" and lp.remove) or (
                c.role == "send" and c.active and lp.add
            ):
                warned.add(c)
        elif c.list_name in deleted and c.active:
            warned.add(c)
    return frozenset(warned)


def _campaigns_unlisted(d: DestinationPlan, list_name: str, listed: Collection[CampaignUse]) -> str:
    """The line counting the campaigns of a list that the plan does not name ("" when it
    names them all)."""
    every = d.campaigns_of(list_name)
    others = [c for c in every if c not in listed]
    if not others:
        return ""
    active = sum(c.active for c in others)
    more = " more" if len(others) < len(every) else ""
    return (
        f"{len(others):,}{more} campaign{'s' if len(others) != 1 else ''} "
        f"use{'s' if len(others) == 1 else ''} it, "
        + ("none of them active" if not active else f"{active:,} of them active")
    )


def plan_json(
    plan: Plan,
    show_members: bool = False,
    allowed: Collection[str] = (),
    error: tuple[str, int] | None = None,
) -> str:
    """`error`: (message, exit code) of a command that fails although it shows its plan."""
    out = plan.to_dict(shower(show_members), allowed)
    if error is not None:
        out["error"], out["exit_code"] = error
    return json_text(out) + "\n"


def _totals(report: ApplyReport) -> dict[str, Any]:
    lists = [lr for d in report.destinations for lr in d.lists]
    deletions = [x for d in report.destinations for x in d.deletions]
    field_results = [d.fields for d in report.destinations if d.fields is not None]
    return {
        "created": sum(lr.created for lr in lists),
        "added": sum(lr.added for lr in lists),
        "removed": sum(lr.removed for lr in lists),
        "deleted": sum(x.deleted for x in deletions),
        "rejected": sum(len(lr.rejected) for lr in lists)
        + sum(len(f.rejected) for f in field_results),
        "errors": sum(len(lr.errors) for lr in lists)
        + sum(x.error is not None for x in deletions)
        + sum(len(f.errors) for f in field_results),
        "updated": sum(f.updated for f in field_results),
    }


def _finish(report: ApplyReport, again: str | None) -> str:
    return report.how_to_finish() if again is None else report.how_to_finish(again)


def _message(show_members: bool) -> Any:
    """An error message in a report: Iterable's own text can quote a member's email."""
    return (lambda text: reveal(text, True)) if show_members else mask_emails


def _expected(lr: ListResult) -> str:
    """Outcomes of a list that are no failure, in words ("" when there are none)."""
    parts = []
    if lr.channel_unsubscribed:
        parts.append(
            f"{lr.channel_unsubscribed:,} of the removed also unsubscribed from the list's "
            "channel (channelUnsubscribe)"
        )
    if lr.already_gone:
        parts.append(f"{lr.already_gone:,} already gone from Iterable (counted as removed)")
    if lr.not_created:
        parts.append(f"{lr.not_created:,} not created (updateExistingUsersOnly)")
    if lr.forgotten:
        parts.append(f"{lr.forgotten:,} forgotten in Iterable, not added")
    return "; ".join(parts)


def _held_back(report: ApplyReport, show_members: bool) -> dict[str, Any]:
    """What the report templates need to say who was held back for consent."""
    return {
        "held_total": sum(h.count for h in report.held_back),
        "held_sources": _sources,
        "masked": not show_members,
    }


def report_text(report: ApplyReport, show_members: bool = False, again: str | None = None) -> str:
    """`again`: how to finish what the run left, when not by applying the manifests
    again as they are (after a saved plan: see ApplyReport.how_to_finish)."""
    return _env.get_template("report.txt.j2").render(
        report=report,
        totals=_totals(report),
        finish=_finish(report, again),
        show=shower(show_members),
        message=_message(show_members),
        sample=SAMPLE * 2,
        expected=_expected,
        **_held_back(report, show_members),
    )


@dataclass(frozen=True)
class _ReportFit:
    """One way of rendering a report for a size limit (report_markdown tries them in turn)."""

    sample: int = SAMPLE * 2  # rejected and held-back members shown per list
    # Rows of lists done as planned shown per destination (None: all), the rest counted
    # with their sums in one row: failures and what was not sent are never left out so.
    routine_rows: int | None = None


# How a report too long for its limit is made to fit, tried in turn: first the rows of
# lists done as planned (every add and remove through, nothing rejected, nothing to note)
# are left out, then as many of them as fit are shown again; then smaller samples of
# rejected and held-back members. Only a report still too long is cut.
_REPORT_FITS = (
    _ReportFit(),
    _ReportFit(routine_rows=0),
    _ReportFit(3, 0),
    _ReportFit(1, 0),
    _ReportFit(0, 0),
)
_REPORT_CUT = "_(report truncated to fit the job summary; the step's log has the whole report)_\n"


@dataclass
class _ReportRows:
    """A destination's rows of a report made to fit: the lists and deletions shown, and
    what the row counting the others says."""

    lists: list[ListResult]
    deletions: list[Any]
    shown_done: int = 0  # rows of lists done as planned still shown
    left: int = 0  # lists done as planned left out
    added: int = 0
    removed: int = 0
    created: int = 0
    deleted: int = 0  # lists deleted (prune) left out


def _is_done(lr: ListResult) -> bool:
    """Whether a list's row says nothing but that it went as planned."""
    return (
        lr.ok
        and not lr.errors
        and lr.added == lr.planned_add
        and lr.removed == lr.planned_remove
        and not _expected(lr)
    )


def _report_rows(routine_rows: int | None) -> Callable[[Any], _ReportRows]:
    def rows(d: Any) -> _ReportRows:
        if routine_rows is None:
            return _ReportRows(list(d.lists), list(d.deletions))
        out = _ReportRows([], [])
        for lr in d.lists:
            if not _is_done(lr) or out.shown_done < routine_rows:
                out.shown_done += _is_done(lr)
                out.lists.append(lr)
                continue
            out.left += 1
            out.added += lr.added
            out.removed += lr.removed
            out.created += lr.created
        for x in d.deletions:
            if x.deleted and x.error is None:
                out.deleted += 1
            else:
                out.deletions.append(x)
        return out

    return rows


def report_markdown(
    report: ApplyReport,
    show_members: bool = False,
    limit: int | None = None,
    again: str | None = None,
) -> str:
    """The report; in at most `limit` characters when given (the job summary's share,
    REPORT_SUMMARY_LIMIT): without the rows of lists done as planned (counted, with their
    sums), then with smaller member samples, as far as it must, and cut (its open blocks
    closed) only if even the rest does not fit."""
    template = _env.get_template("report.md.j2")
    context = {
        "report": report,
        "totals": _totals(report),
        "finish": _finish(report, again),
        "show": shower(show_members),
        "message": _message(show_members),
        "md": _md,
        "code": _code,
        "expected": _expected,
        **_held_back(report, show_members),
    }

    def render(fit: _ReportFit) -> tuple[str, str]:
        text = template.render(
            {**context, "sample": fit.sample, "rows": _report_rows(fit.routine_rows)}
        )
        return text, _report_fit_note(fit)

    text, _note = render(_ReportFit())
    if limit is None or len(text) <= limit:
        return text
    routine = max((sum(_is_done(lr) for lr in d.lists) for d in report.destinations), default=0)
    for fit in _REPORT_FITS[1:]:
        text, note = render(fit)
        if len(text) + len(note) + 1 <= limit:
            fit, text, note = _most_rows(fit, render, limit, routine)
            return text + "\n" + note
    return cut_markdown(text, limit, _REPORT_CUT)


def _report_fit_note(fit: _ReportFit) -> str:
    """What a report made to fit left out, in one line ("" when nothing)."""
    cuts = []
    if fit.routine_rows is not None:
        cuts.append("lists done as planned counted, not all shown")
    if fit.sample != SAMPLE * 2:
        cuts.append(f"samples cut to {fit.sample} member{'s' if fit.sample != 1 else ''} a list")
    if not cuts:
        return ""
    return (
        f"_(report made to fit the job summary: {'; '.join(cuts)}; the step's log has the "
        "whole report)_\n"
    )


def report_json(
    report: ApplyReport, show_members: bool = False, error: tuple[str, int] | None = None
) -> str:
    """`error`: (message, exit code) of an apply that fails after its work although it
    shows its report (a summary file it could not add to)."""
    out = report.to_dict(shower(show_members))
    if error is not None:
        out["error"], out["exit_code"] = error
    return json_text(out) + "\n"


def report_failure(report: ApplyReport, again: str | None = None) -> str | None:
    """Why an apply that ran exits 1 for what its report holds (changes that failed, source
    data its plan could not use), in words, and what to do; None when it does not. With
    --format json the report's object carries it as `error`: stdout is all a script reads."""
    reasons = []
    if not report.ok:
        totals = _totals(report)  # as the text report's last line counts them
        reasons.append(
            f"apply finished with failures ({quantity(totals['rejected'], 'member')} "
            f"rejected, {quantity(totals['errors'], 'error')}); the report's destinations "
            f"say which. {_finish(report, again)}"
        )
    if report.source_problems:
        reasons.append(
            f"{report.source_problems}; `reconciler plan --format json` says which "
            "(skipped_members, field_issues, unread)"
        )
    return "; ".join(reasons) or None


# By output format: the CLI's --format picks one; every renderer ends with a newline (the
# report's are called by name: text and markdown say how to finish a run, `again`).
PLAN_RENDERERS = {"text": plan_text, "markdown": plan_markdown, "json": plan_json}
