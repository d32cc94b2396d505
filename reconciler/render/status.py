"""`reconciler status`: a plan summarised, one row per audience, as JSON, markdown or a
terminal table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.plan import ListPlan, Plan
from reconciler.render.json_text import json_text
from reconciler.render.masking import mask_emails
from reconciler.render.plans import markdown_cell

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

Row = Mapping[str, Any]

_COLUMNS = (
    ("destination", "left"),
    ("audience", "left"),
    ("list id", "right"),
    ("in Iterable", "right"),
    ("desired", "right"),
    ("+add", "right"),
    ("-remove", "right"),
    ("~update", "right"),
    ("held back", "right"),
    ("policy", "left"),
)


def status_rows(plan: Plan) -> list[dict[str, Any]]:
    """Per audience: its list, members in Iterable and desired, pending changes, and
    whether the safety policy blocks it (the JSON rows, also what the table shows). An
    audience left out of the plan (its list not read with confidence, or which list is its
    not certain) has a row too, its counts unknown and `left_out` saying why: without it,
    it would vanish from the table."""
    rows: list[dict[str, Any]] = []
    for d in plan.destinations:
        # Judged once per destination: per row, 2,000 audiences took 5.6 s (quadratic).
        blocked = {v.list_name for v in d.violations()}
        rows.extend(
            {
                "destination": d.destination,
                "audience": lp.audience,
                "list_name": lp.list_name,
                "list_id": lp.list_id,
                "iterable_members": lp.live_count if lp.list_id is not None else None,
                "desired_members": lp.desired_count,
                "pending_adds": len(lp.add),
                "pending_removes": len(lp.remove),
                "pending_updates": len(lp.field_update_keys),
                # Desired, neither on the list nor to be added, and no failure: without
                # them desired and in Iterable did not add up, with nothing pending.
                "held_back": _held_back(lp),
                "blocked": lp.list_name in blocked,
                "left_out": None,
                "delete_list": False,
            }
            for lp in d.lists
        )
        rows.extend(
            {
                "destination": d.destination,
                "audience": audience,
                "list_name": None,
                "list_id": None,
                "iterable_members": None,
                "desired_members": None,
                "pending_adds": None,
                "pending_removes": None,
                "pending_updates": None,
                "held_back": None,
                "blocked": False,
                # Iterable's answer it quotes may quote a member (status has no
                # --show-members).
                "left_out": mask_emails(why),
                "delete_list": False,
            }
            for audience, why in d.unread
        )
        # A list prune deletes is the largest change a plan can hold: without a row, the
        # status of a destination about to lose a list read as if nothing were pending.
        # Its members are not read (no audience declares it), so its counts are unknown.
        rows.extend(
            {
                "destination": d.destination,
                "audience": None,
                "list_name": deletion.list_name,
                "list_id": deletion.list_id,
                "iterable_members": None,
                "desired_members": None,
                "pending_adds": None,
                "pending_removes": None,
                "pending_updates": None,
                "held_back": None,
                "blocked": deletion.list_name in blocked,
                "left_out": None,
                "delete_list": True,
            }
            for deletion in d.deletions
        )
    return rows


def status_json(rows: list[dict[str, Any]], error: tuple[str, int] | None = None) -> str:
    """`error`: (message, exit code) of a status that exits with an error although it
    shows its rows (source data it could not use): the object is all a script reads."""
    out: dict[str, Any] = {"audiences": rows}
    if error is not None:
        out["error"], out["exit_code"] = error
    return json_text(out)


def left_out_reasons(rows: list[dict[str, Any]]) -> list[str]:
    """Why each audience left out of the plan was, one line each: its row says only LEFT
    OUT, and the reason (a projectType the project is not, a read that failed) was in
    `plan` or the JSON alone."""
    return [
        f"{r['destination']}/{r['audience']} left out: {r['left_out']}"
        for r in rows
        if r["left_out"] is not None
    ]


def status_markdown(rows: list[dict[str, Any]]) -> str:
    header = (
        "| destination | audience | list id | in Iterable | desired | +add | -remove | "
        "~update | held back | policy |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    body = "".join(
        "| "
        + " | ".join(
            markdown_cell(str(cell)) for cell in (r["destination"], _audience(r), *_cells(r))
        )
        + " |\n"
        for r in rows
    )
    reasons = "".join(f"- {markdown_cell(line)}\n" for line in left_out_reasons(rows))
    return "### reconciler status\n\n" + header + body + (f"\n{reasons}" if reasons else "")


def status_table(rows: list[dict[str, Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=None, show_edge=False, header_style="bold")
    cells = [[r["destination"], _audience(r), *_cells(r)] for r in rows]
    for i, (column, justify) in enumerate(_COLUMNS):
        if column in ("destination", "audience"):
            # Names wrap rather than end in "…": two audiences must not look alike.
            table.add_column(column, justify="left", overflow="fold")
        else:
            # A count is never cut short ("12,000,0…" is no count), nor BLOCKED.
            widest = max((len(row[i]) for row in cells), default=0)
            table.add_column(column, justify=justify, no_wrap=True, min_width=widest)  # type: ignore[arg-type]
    for row in cells:
        # As text, not rich markup: a list name such as "Gone [old]" lost its "[old]".
        table.add_row(*(Text(cell) for cell in row))
    return table


# Below this many characters for the names, the table gives way to the stacked layout:
# at 80 or 100 columns the counts' columns left 3 to 7 ("pro/duc/tio/n").
_NAMES_MIN = 30


def status_text(rows: list[dict[str, Any]], width: int) -> RenderableType:
    """What `status` shows in a terminal `width` columns wide: the table, or, where the
    table would leave its names too little room, each row stacked on two lines (its name
    and list, then its counts), every name whole on its line. A log or a file gets the
    table, however wide (cli/status.py)."""
    table = status_table(rows)
    if not rows:
        return table
    from rich.console import Console

    natural = Console(width=100_000).measure(table).maximum
    names = sum(
        max(len(column), *(len(name) for name in names))
        for column, names in (
            ("destination", [r["destination"] for r in rows]),
            ("audience", [_audience(r) for r in rows]),
        )
    )
    if natural <= width or width - (natural - names) >= min(names, _NAMES_MIN):
        return table
    return _stacked(rows)


def _stacked(rows: list[dict[str, Any]]) -> RenderableType:
    """Per row `destination/audience: list ID, POLICY`, then its counts indented (wrapped
    within the indent where even they are too wide), named as the table's headers are."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    lines: list[RenderableType] = []
    for r in rows:
        list_id, live, desired, add, remove, update, held, policy = _cells(r)
        if r.get("delete_list"):
            head = (
                f"{r['destination']}: list {r['list_name']!r} (id {list_id}), declared by no"
                f" audience: prune deletes it, {policy}"
            )
        elif r["left_out"] is not None:
            head = f"{r['destination']}/{r['audience']}: {policy}"
        else:
            where = "list not created" if r["list_id"] is None else f"list {list_id}"
            head = f"{r['destination']}/{r['audience']}: {where}" + (
                f", {policy}" if policy else ""
            )
        # As text, not rich markup (a name such as "Gone [old]").
        lines.append(Text(head))
        if r["left_out"] is None and not r.get("delete_list"):
            # 70 characters with six-figure counts: one line at 80 columns.
            counts = (
                f"in Iterable {live}, desired {desired}; pending +{add} -{remove} ~{update};"
                f" held back {held}"
            )
            lines.append(Padding(Text(counts), (0, 0, 0, 4)))
    return Group(*lines)


def _audience(r: Row) -> str:
    """The audience column: a list prune deletes has none, so it is named by its list."""
    if r.get("delete_list"):
        return f"(list {r['list_name']!r}: declared by no audience, prune deletes it)"
    return str(r["audience"])


def _cells(r: Row) -> list[str]:
    """A row's list id, counts (with thousands separators) and policy, as shown."""
    if r["left_out"] is not None:
        # Nothing is known of its list: `reconciler plan` says why.
        return ["-"] * 7 + ["LEFT OUT"]
    if r.get("delete_list"):
        return [str(r["list_id"]), *["-"] * 6, "DELETE (BLOCKED)" if r["blocked"] else "DELETE"]
    live = r["iterable_members"]
    return [
        str(r["list_id"]) if r["list_id"] is not None else "(not created)",
        f"{live:,}" if live is not None else "-",
        *(f"{r[k]:,}" for k in ("desired_members", "pending_adds", "pending_removes")),
        f"{r['pending_updates']:,}",
        f"{r['held_back']:,}",
        "BLOCKED" if r["blocked"] else "",
    ]


def _held_back(lp: ListPlan) -> int:
    """Desired members the plan does not send, as expected (ListPlan.left_out): who left
    the list or its channel themselves, users Iterable has forgotten, and users
    updateExistingUsersOnly does not create. A member in two of them counts once."""
    keys = {*lp.left_themselves, *lp.channel_unsubscribed, *lp.forgotten, *lp.not_created}
    return len(keys)
