"""A plan too big for a pull-request comment (GitHub refuses bodies over 65,536
characters) still says what matters: every warning, destination and list row, with fewer
member samples; cut only when even the tables do not fit, and then with its blocks closed.
The job summary, which takes up to 1 MiB, gets more than the comment. Parsed as GitHub
does with markdown-it-py (CommonMark plus tables), the parser rich depends on."""

from __future__ import annotations

import dataclasses
import re

from markdown_it import MarkdownIt

from reconciler.github.message import marked_body
from reconciler.members.identity import Member
from reconciler.plan import CampaignUse, DestinationPlan, ListDeletion, ListPlan, Plan
from reconciler.render import plans
from reconciler.render.plans import MARKDOWN_LIMIT, SAMPLE, SUMMARY_LIMIT, plan_markdown

GITHUB_BODY_LIMIT = 65_536


def member(n: int) -> Member:
    address = f"member{n:06d}@example.com"
    return Member(address, "email", email=address)


def changed_list(name: str, first: int) -> ListPlan:
    return ListPlan(
        audience=name,
        list_name=name,
        list_id=first,
        create=False,
        description=None,
        add=tuple(member(first + i) for i in range(30)),
        remove=tuple(f"gone{first + i:06d}@example.com" for i in range(20)),
        unchanged=1000,
        live_count=1020,
        desired_count=1030,
        max_removal_percent=100.0,
    )


def many_lists_plan(per_destination: int) -> Plan:
    """Two destinations, each with `per_destination` lists that add 30 and remove 20."""
    return Plan(
        tuple(
            DestinationPlan(
                destination=destination,
                project_type="hybrid",
                lists=tuple(
                    changed_list(f"{destination}-segment-{i:04d}", 10_000 * d + 100 * i)
                    for i in range(per_destination)
                ),
                member_read="read",
            )
            for d, destination in enumerate(("prod", "eu"))
        )
    )


def html(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def test_a_plan_of_many_lists_keeps_every_list_with_fewer_samples():
    plan = many_lists_plan(60)
    full = plan_markdown(plan, limit=10**9)
    assert len(full) > MARKDOWN_LIMIT  # too big for a comment with full samples

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    for d in plan.destinations:
        assert f"#### Destination `{d.destination}`" in text
        for lp in d.lists:
            assert f"| {lp.list_name} | {lp.list_id} | 30 | 20 |" in text
    assert "_Samples cut to" in text
    rendered = html(text)
    assert rendered.count("<pre>") == 2  # one sample block per destination, both closed
    assert "Samples cut to" in rendered.split("</pre>")[-1]  # the note is text, not code
    # The comment built from it fits GitHub's limit without a second cut.
    body = marked_body("reconciler-plan", text, "footer", full_at="https://run")
    assert len(body) < GITHUB_BODY_LIMIT
    assert "too long for a comment" not in body


def test_the_job_summary_gets_the_full_samples_the_comment_had_to_cut():
    plan = many_lists_plan(60)
    summary = plan_markdown(plan, limit=SUMMARY_LIMIT)
    assert summary == plan_markdown(plan, limit=10**9)  # nothing cut
    first = plan.destinations[0].lists[0]
    assert f"... and {30 - SAMPLE} more" in summary
    assert summary.count(f"+ {first.list_name}: ") == SAMPLE + 1


def test_a_plan_too_big_even_without_samples_is_cut_with_its_blocks_closed():
    # Lists to create: each row says so, so none is counted in a row of routine ones.
    plan = many_lists_plan(1000)
    plan = Plan(
        tuple(
            dataclasses.replace(
                d, lists=tuple(dataclasses.replace(lp, create=True) for lp in d.lists)
            )
            for d in plan.destinations
        )
    )

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    assert text.rstrip().endswith("run `reconciler plan` to see it all)_")
    rendered = html(text)
    last = rendered.rsplit("<p>", 1)[-1]
    assert last.startswith("<em>(plan truncated to fit")  # a paragraph, not code
    assert rendered.count("<pre>") == rendered.count("</pre>")
    kept = text.split("_(plan truncated")[0]
    assert kept.count("<details>") == kept.count("</details>")
    assert "prod-segment-0000" in text  # the start of the plan is kept
    # It says what the cut took that a reviewer would otherwise not know was there.
    assert "#### Destination `eu`" not in text
    assert (
        "plan truncated to fit: the rest of the plan, destination `eu` included, is not shown"
        in text
    )


def test_a_plan_far_beyond_every_fit_is_rendered_twice_not_once_per_fit(monkeypatch):
    # 1,000 lists to create per destination, with notes: every fit up to the last is
    # tried in vain, each a full render (1.6 s of CPU for 4,000 lists in
    # bench/render_plan.py once the fits of routine rows and notes came, 1.1 s before).
    plan = many_lists_plan(1000)
    plan = Plan(
        tuple(
            dataclasses.replace(
                d,
                lists=tuple(dataclasses.replace(lp, create=True) for lp in d.lists),
                notes=tuple(f"note {i}" for i in range(30)),
            )
            for d in plan.destinations
        )
    )
    renders: list[object] = []
    fit_note = plans._fit_note

    def counted(fit: object) -> str:
        renders.append(fit)
        return fit_note(fit)  # type: ignore[arg-type]

    monkeypatch.setattr(plans, "_fit_note", counted)
    text = plan_markdown(plan)
    assert len(renders) == 2  # the full plan, then the last fit, which it cuts
    assert "_(plan truncated to fit" in text

    # The same text as when every fit is tried in turn.
    renders.clear()
    monkeypatch.setattr(plans, "_beyond_every_fit", lambda *args: False)
    assert plan_markdown(plan) == text
    assert len(renders) > 2


def unchanged_list(name: str, list_id: int) -> ListPlan:
    return ListPlan(
        audience=name,
        list_name=name,
        list_id=list_id,
        create=False,
        description=None,
        add=(),
        remove=(),
        unchanged=1000,
        live_count=1000,
        desired_count=1000,
        max_removal_percent=10.0,
    )


def test_a_change_among_thousands_of_unchanged_lists_stays_in_the_comment():
    """A pull request that changes one audience of a repository of 2,000: the comment's
    table must show that list, not be cut among the rows of lists with no changes."""
    lists = tuple(unchanged_list(f"segment-{i:04d}", 1_000_000 + i) for i in range(2_000))
    changed = changed_list("segment-zz-changed", 2_000_000)
    plan = Plan(
        (
            DestinationPlan(
                destination="prod",
                project_type="hybrid",
                lists=(*lists, changed),
                member_read="read",
            ),
        )
    )
    assert len(plan_markdown(plan, limit=10**9)) > MARKDOWN_LIMIT

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    assert "plan truncated" not in text
    assert f"| {changed.list_name} | {changed.list_id} | 30 | 20 |" in text
    assert "2,000 lists with no changes not shown" in text
    assert "| segment-0000 |" not in text
    # Its samples are kept: the rows left out made room enough.
    assert f"+ {changed.list_name}: ... and {30 - SAMPLE} more" in text
    assert "_Lists with no changes not shown to fit;" in text
    assert rendered_once(text)


def rendered_once(text: str) -> bool:
    """The table still renders as one table with the note as its last row."""
    rendered = html(text)
    return rendered.count("<table>") == 1 and "lists with no changes not shown" in rendered


def test_finished_campaigns_of_many_lists_do_not_push_deletions_holds_and_notes_out():
    """A newsletter list sent to weekly for a year is used by dozens of finished campaigns:
    listed one per line for each of 24 changed lists, they filled the comment and its cut
    took the second destination whole (its table, the list prune deletes there), the
    consent holds and the notes, while no campaign needed a word of warning."""
    lists = tuple(
        dataclasses.replace(
            changed_list(f"aud-{i:02d}", 1_000 + i),
            left_themselves=tuple(f"left{i}-{k}@example.com" for k in range(3)),
            left_sources=(("EmailLink", 3),),
        )
        for i in range(24)
    )
    finished = tuple(
        CampaignUse(lp.list_name, 10_000 + c, f"Weekly {c}", "Blast", "Finished", "send")
        for lp in lists
        for c in range(60)
    )
    warned = CampaignUse("aud-00", 99, "Welcome", "Triggered", "Running", "send")
    plan = Plan(
        tuple(
            DestinationPlan(
                destination=name,
                project_type="email",
                lists=lists,
                member_read="read",
                campaigns=(*finished, warned),
                deletions=(ListDeletion(9, f"{name}-retired"),),
                allow_list_deletion=True,
                notes=(f"{name}: the listName of aud-03 changed",),
            )
            for name in ("prod", "eu")
        )
    )
    assert len(plan_markdown(plan, limit=10**9)) > MARKDOWN_LIMIT

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    assert "plan truncated" not in text
    for name in ("prod", "eu"):
        assert f"#### Destination `{name}`" in text
        assert f"| {name}-retired | 9 | | | | | **delete list** (prune) |" in text
        assert f"{name}: the listName of aud-03 changed" in text
    assert text.count("held back: left the list themselves: 3") == 48
    # The campaign that needs a warning keeps its line; the others are counted per list.
    assert text.count("'Welcome' (id 99): **30 added members can be messaged") == 2
    assert "'Weekly 0'" not in text
    assert "- aud-00: 60 more campaigns use it, none of them active" in text
    assert "campaigns listed only where they need a warning" in text.lower()


def test_hundreds_of_changed_lists_keep_every_destination_deletion_hold_and_note():
    """A daily drift or a shared source changed under 600 audiences in each of two
    destinations: their table rows alone outgrew the comment, and the cut took the second
    destination whole, with the list prune deletes there, its consent holds and its notes.
    Lists with nothing but adds and removes are now counted in one row per destination, so
    the rows that say more stay, and nothing is cut."""
    plan = many_lists_plan(600)
    held = dataclasses.replace(
        changed_list("eu-held", 999_000),
        left_themselves=("left@example.com",),
        left_sources=(("EmailLink", 1),),
    )
    created = dataclasses.replace(changed_list("eu-new", 0), list_id=None, create=True)
    eu = dataclasses.replace(
        plan.destinations[1],
        lists=(*plan.destinations[1].lists, held, created),
        deletions=(ListDeletion(9, "eu-retired"),),
        allow_list_deletion=True,
        notes=("list 'eu-old' is named 'eu-new' now",),
    )
    plan = Plan((plan.destinations[0], eu))

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    assert "plan truncated" not in text
    assert "#### Destination `eu`" in text
    assert "| eu-retired | 9 | | | | | **delete list** (prune) |" in text
    assert "| eu-held | 999000 | 30 | 20 |" in text
    assert "eu-held: held back: left the list themselves: 1" in text
    assert "| eu-new | new | 30 | 20 |" in text
    assert "list 'eu-old' is named 'eu-new' now" in text
    # Each destination shows as many of those rows as fit and counts the others, with
    # what they add and remove: with the rows shown, every list's adds and removes.
    for name in ("prod", "eu"):
        section = text.split(f"#### Destination `{name}`")[1].split("#### Destination")[0]
        shown = re.findall(rf"^\| {name}-segment-\d+ \| \d+ \| 30 \| 20 \|", section, re.M)
        (hidden,) = re.findall(
            r"_(\d+) more lists with only adds and removes not shown: "
            r"\+([\d,]+) / -([\d,]+)_",
            section,
        )
        assert len(shown) > 100
        assert len(shown) + int(hidden[0]) == 600
        assert int(hidden[1].replace(",", "")) == 30 * int(hidden[0])
        assert int(hidden[2].replace(",", "")) == 20 * int(hidden[0])
    assert "lists with only adds and removes not shown" in text.split("\n")[-2].lower()
    assert rendered_tables_close(text)


def rendered_tables_close(text: str) -> bool:
    rendered = html(text)
    return rendered.count("<table>") == rendered.count("</table>") == 2


def test_hundreds_of_blocked_deletions_keep_the_summary_and_the_tables():
    """Audiences moved out of the manifest directory by mistake: prune plans to delete 400
    lists and the policy blocks each. The caution listed every one before the summary line
    and the tables, and the cut took both: the comment said the plan was blocked, but not
    what it did."""
    deletions = tuple(ListDeletion(5_000 + i, f"audience-{i:04d}") for i in range(400))
    plan = Plan(
        (
            DestinationPlan(
                destination="prod",
                project_type="email",
                lists=(changed_list("kept", 1),),
                member_read="read",
                deletions=deletions,
            ),
        )
    )
    assert len(plan_markdown(plan, limit=10**9)) > MARKDOWN_LIMIT

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    assert "plan truncated" not in text
    assert "**400** to delete" in text
    assert "| audience-0399 | 5399 | | | | | **delete list** (prune) |" in text
    assert "deletes list 'audience-0019'" in text and "deletes list 'audience-0020'" not in text
    assert "> - ... and 380 more (list_deletion 380)" in text
    assert "violations listed up to 20" in text.lower()


def test_hundreds_of_notes_keep_the_next_destination():
    """200 audience keys renamed at once: a note on each old list (about 420 characters)
    outgrew the comment after every other fit, and the cut took the next destination."""
    note = (
        "list 'segment-{n:03d}' (list {n}) was created for audience 'segment-{n:03d}', which "
        "no manifest declares any more, and this plan creates 200 lists ('eu-segment-000', "
        "'eu-segment-001', 'eu-segment-002' and 197 more): prune deletes it in this plan, "
        "losing its id and history. If an audience was renamed from 'segment-{n:03d}', set "
        "its listName: 'segment-{n:03d}' to keep list {n} and the campaigns and journeys "
        "that use it."
    )
    prod = DestinationPlan(
        destination="prod",
        project_type="email",
        lists=(changed_list("kept", 1),),
        notes=tuple(note.format(n=n) for n in range(200)),
    )
    eu = DestinationPlan(
        destination="eu",
        project_type="email",
        lists=(changed_list("eu-list", 2),),
        deletions=(ListDeletion(9, "eu-retired"),),
        allow_list_deletion=True,
    )
    plan = Plan((prod, eu))
    assert len(plan_markdown(plan, limit=10**9)) > MARKDOWN_LIMIT

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    assert "plan truncated" not in text
    assert "| eu-retired | 9 | | | | | **delete list** (prune) |" in text
    assert "'segment-019'" in text and "'segment-020'" not in text
    assert "> ... and 180 more notes" in text
    # The rows the notes made room for are all shown again.
    assert "| kept | 1 | 30 | 20 |" in text and "| eu-list | 2 | 30 | 20 |" in text
    assert "lists with only adds and removes not shown" not in text
    assert "notes listed up to 20 a destination" in text.lower()


def test_a_cut_plan_names_the_lists_prune_deletes_that_the_cut_took():
    """A pull request adding hundreds of audiences (lists to create, long names) and
    removing the one of a list prune then deletes: the deletion's row, after the lists of
    its destination, and the next destination's were cut, and nothing but "2 to delete" in
    the summary line named what the merge would delete. The cut's note now names each."""
    plan = many_lists_plan(1000)
    gone = ListDeletion(list_id=9, list_name="ALL `customers` @acme")
    plan = Plan(
        (
            dataclasses.replace(
                plan.destinations[0],
                lists=(
                    changed_list("prod-first", 5),
                    *(dataclasses.replace(lp, create=True) for lp in plan.destinations[0].lists),
                ),
                deletions=(gone,),
                allow_list_deletion=True,
            ),
            dataclasses.replace(
                plan.destinations[1],
                lists=plan.destinations[1].lists[:1],
                deletions=(ListDeletion(list_id=10, list_name="eu-customers"),),
                allow_list_deletion=True,
            ),
        )
    )

    text = plan_markdown(plan)

    assert len(text) <= MARKDOWN_LIMIT
    note = text.split("_(plan truncated")[1]
    assert "2 lists prune deletes" in note
    assert "``prod/ALL `customers` @acme`` (list 9)" in note
    assert "`eu/eu-customers` (list 10)" in note
    # In code spans the name is as written and mentions no one.
    rendered = html(text)
    assert "<code>prod/ALL `customers` @acme</code>" in rendered

    # A deletion the cut keeps is not named again.
    plan = Plan(
        (
            dataclasses.replace(plan.destinations[0], lists=plan.destinations[0].lists[:1]),
            dataclasses.replace(
                plan.destinations[1],
                lists=tuple(
                    dataclasses.replace(lp, create=True)
                    for lp in many_lists_plan(1000).destinations[1].lists
                ),
            ),
        )
    )
    text = plan_markdown(plan)
    note = text.split("_(plan truncated")[1]
    assert "| 9 | | | | | **delete list** (prune) |" in text.split("_(plan truncated")[0]
    assert "customers` @" not in note
    assert "1 list prune deletes" in note and "`eu/eu-customers` (list 10)" in note


def test_a_cut_plan_counts_the_campaign_warnings_the_cut_took():
    """The warnings that a campaign will message the members a list gains, or reach those
    a suppression list loses, come after a destination's table: hundreds of lists to
    create pushed them out of the comment with nothing but the cut's note to say the plan
    went on. The note now counts them."""
    plan = many_lists_plan(1000)
    prod = plan.destinations[0]
    lists = tuple(dataclasses.replace(lp, create=True) for lp in prod.lists)
    campaigns = (
        CampaignUse(lists[0].list_name, 1, "Welcome", "Triggered", "Running", "send"),
        CampaignUse(lists[1].list_name, 2, "Winback", "Blast", "Scheduled", "suppression"),
    )
    plan = Plan((dataclasses.replace(prod, lists=lists, campaigns=campaigns),))

    text = plan_markdown(plan)

    assert "can be messaged by it" not in text and "makes them reachable" not in text
    note = text.split("_(plan truncated")[1]
    assert "2 campaign warnings" in note
