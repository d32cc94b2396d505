"""Names from manifests in the markdown plan (the pull-request comment, the job summary):
a listName is any text up to 255 characters, and a pull request's author writes it. Parsed
here as GitHub does (CommonMark plus tables, raw HTML passed through), with markdown-it-py,
the parser rich already depends on."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Any

from markdown_it import MarkdownIt

from reconciler.members.identity import Member
from reconciler.plan import DestinationPlan, FieldUpdate, ListPlan, Plan
from reconciler.render.plans import plan_markdown, plan_text

# Each part tries to escape where the name is put: a backtick ends an inline code span, a
# newline and a fence end the sample's code block, raw HTML renders (an unclosed comment
# hides the rest of the comment), `|` splits a table cell.
HOSTILE = "x` <!-- hide\n```\n<b>bold</b> | <details><summary>ok</summary>\u202egnp.exe"
FIELD = "tier\n```\n<!-- field"
# A name as people write them: a family emoji is three joined by zero-width joiners.
EMOJI = "vip-list \U0001f468\u200d\U0001f469\u200d\U0001f467"


def hostile_plan() -> Plan:
    added = Member("new@example.com", "email", email="new@example.com")
    lp = ListPlan(
        audience="vip",
        list_name=HOSTILE,
        list_id=7,
        create=False,
        description=None,
        add=(added,),
        remove=("old1@example.com", "old2@example.com"),
        unchanged=2,
        live_count=4,
        desired_count=3,
        channel_unsubscribe=True,  # the warning naming the list
        max_removal_percent=10.0,  # a violation naming the list
        resubscribe_allowed=True,  # the second warning naming the list
        field_update_keys=("kept@example.com",),
    )
    update = FieldUpdate(
        key="kept@example.com",
        key_kind="email",
        email="kept@example.com",
        user_id=None,
        changes={FIELD: ("a", "b")},
    )
    return Plan(
        (
            DestinationPlan(
                destination="prod",
                project_type="hybrid",
                lists=(lp,),
                member_read="read",
                field_updates=(update,),
            ),
        )
    )


def _named(**changes: Any) -> ListPlan:
    """The hostile plan's first list with `changes` (a name to render, ...)."""
    return dataclasses.replace(hostile_plan().destinations[0].lists[0], **changes)


def _plan(*lists: ListPlan, new_fields: tuple[tuple[str, str], ...] = ()) -> Plan:
    """A plan of `lists` in one hybrid destination, `prod`."""
    return Plan(
        (
            DestinationPlan(
                destination="prod",
                project_type="hybrid",
                lists=lists,
                member_read="read",
                new_fields=new_fields,
            ),
        )
    )


def rendered() -> tuple[str, str]:
    text = plan_markdown(hostile_plan())
    return text, MarkdownIt("commonmark").enable("table").render(text)


def test_a_hostile_list_name_renders_as_text_everywhere_in_the_plan():
    text, html = rendered()
    assert "blocked by the safety policy" in html
    # No HTML of the name's reaches the page: it shows as text, escaped.
    for tag in ("<b>", "<details><summary>ok", "<!--"):
        assert tag not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    # The violation still names the list, whole, in one code span.
    assert "<code>prod/x` &lt;!-- hide\\n```\\n&lt;b&gt;bold&lt;/b&gt;" in html
    # One table row per list (plus the header), and the two code blocks (members,
    # field updates) end where the plan ends them: nothing the name wrote became markup.
    assert html.count("<tr>") == 2
    assert html.count("<pre>") == 2
    assert html.count("<details>") == 2  # the plan's own: members sample, field updates
    # A right-to-left override shows as its escape, and reorders nothing after it.
    assert "\u202e" not in text and "\\u202egnp.exe" in text
    # Each warning and the violation name the list on their own line.
    lines = text.splitlines()
    assert sum("channelUnsubscribe is ON" in line and "x" in line for line in lines) == 1
    assert sum("resubscribe: allowed** for" in line for line in lines) == 1


def test_a_plain_list_name_renders_as_before():
    plain = hostile_plan()
    lp = plain.destinations[0].lists[0]
    named = Plan(
        (
            DestinationPlan(
                destination="prod",
                project_type="hybrid",
                lists=(dataclasses.replace(lp, list_name=EMOJI),),
                member_read="read",
            ),
        )
    )
    text = plan_markdown(named)
    assert f"> - `prod/{EMOJI}`: removes 2 of 4 members" in text
    assert f"**channelUnsubscribe is ON** for {EMOJI}:" in text
    assert f"+ {EMOJI}: " in text


def test_a_list_name_that_looks_like_a_mention_notifies_no_one():
    """GitHub turns `@name` in a comment's text (not in code) into a mention and notifies
    that user or team whenever the plan comment is posted or updated."""
    plan = _plan(_named(list_name="@acme/growth &amp; x"))
    html = MarkdownIt("commonmark").enable("table").render(plan_markdown(plan))
    # Outside code spans, no `@` starts a word; the name still reads the same.
    text = re.sub(r"<code[^>]*>.*?</code>", "", html, flags=re.S)
    assert re.search(r"(?<![\w])@[\w-]", text) is None
    assert "@\u200b" in html or "@&#8203;" in html
    assert "@\u200bacme/growth &amp;amp; x" in html.replace("&#8203;", "\u200b")


def test_a_new_field_is_named_as_it_is_spelt():
    """New fields are shown in code spans, where markdown's backslash escapes are not
    undone: `plan_tier` read `plan\\_tier` in the comment, which is no field's name."""
    names = ("plan_tier", "a`b", "*stars*")
    plan = _plan(_named(list_name="vip"), new_fields=tuple((name, "string") for name in names))
    html = MarkdownIt("commonmark").enable("table").render(plan_markdown(plan))
    shown = re.findall(r"<code>([^<]*)</code> \(string\)", html)
    assert [code.strip() for code in shown] == ["plan_tier", "a`b", "*stars*"]


def test_a_user_id_with_a_backtick_stays_in_its_code_span():
    """A userId is any printable ASCII: with --show-members, one holding a backtick ended
    its code span early in the list of members not sent."""
    plan = _plan(_named(list_name="vip", forgotten=("u`1", "u2")))
    html = MarkdownIt("commonmark").enable("table").render(plan_markdown(plan, show_members=True))
    assert re.search(r"forgotten in Iterable, not sent: <code>u`1</code>, <code>u2</code>", html)


def test_a_list_name_that_reads_as_an_issue_reference_references_none():
    """GitHub links `#42`, `GH-42` and `owner/repo#42` in a comment's text to that issue or
    pull request and adds "mentioned this" to its timeline, each time the plan is posted."""
    name = "Promo #42 GH-7 acme/site#9 @ann"
    plan = _plan(_named(list_name=name))
    html = MarkdownIt("commonmark").enable("table").render(plan_markdown(plan))
    text = re.sub(r"<code[^>]*>.*?</code>", "", html, flags=re.S).replace("&#8203;", "\u200b")
    assert re.search(r"#\d|GH-\d|@\w", text, flags=re.I) is None
    assert "Promo #\u200b42 GH-\u200b7 acme/site#\u200b9 @\u200bann" in text


def test_a_list_name_holding_a_web_address_links_nowhere():
    """GitHub links a bare `https://...` or `www....` in a comment's text (GFM's extended
    autolinks), so a list name (from a pull request, or one anyone with the Iterable project
    gave a list, in the drift issue) put a working link into what the bot posts: "Approve
    at https://evil.example/login". `$...$` is GitHub's math, which draws what it likes."""
    name = "Approve at https://evil.example/login or WWW.evil.example, FTP://x.example $\\huge{OK}$"
    plan = _plan(_named(list_name=name))
    html = MarkdownIt("commonmark").enable("table").render(plan_markdown(plan))
    text = re.sub(r"<code[^>]*>.*?</code>", "", html, flags=re.S).replace("&#8203;", "\u200b")
    text = re.sub(r"<pre>.*?</pre>", "", text, flags=re.S)
    # What GFM's autolink extension starts a link at: a scheme's `://`, or `www.`.
    assert re.search(r"(?i)(?:https?|ftp)://|\bwww\.", text) is None
    markdown = re.sub(r"`[^`]*`", "", plan_markdown(plan).split("```diff")[0])
    assert "$" in markdown and re.search(r"(?<!\\)\$", markdown) is None  # outside code: \$
    # The name still reads as written (a zero-width space is invisible).
    assert (
        "Approve at https\u200b://evil.example/login or WWW\u200b.evil.example, "
        "FTP\u200b://x.example $\\huge{OK}$" in text
    )


def test_the_consent_warnings_name_the_destination_when_several_have_the_list():
    """Two destinations (regions) with a list of one name, one of them removing with
    channelUnsubscribe and re-adding under `resubscribe: allowed`: the warnings at the top
    named only "newsletter", so a reviewer could not tell whose members lose their
    channel."""

    def newsletter(**changes: object) -> ListPlan:
        plain = ListPlan(
            audience="newsletter",
            list_name="newsletter",
            list_id=7,
            create=False,
            description=None,
            add=(Member("new@example.com", "email", email="new@example.com"),),
            remove=("old@example.com",),
            unchanged=20,
            live_count=21,
            desired_count=21,
        )
        return dataclasses.replace(plain, **changes)

    plan = Plan(
        tuple(
            DestinationPlan(destination=name, project_type="email", lists=(lp,))
            for name, lp in (
                ("us", newsletter()),
                ("eu", newsletter(channel_unsubscribe=True, resubscribe_allowed=True)),
            )
        )
    )
    text, markdown = plan_text(plan), plan_markdown(plan)
    assert "!!! channelUnsubscribe is ON for eu/newsletter:" in text
    assert "!!! resubscribe: allowed for eu/newsletter:" in text
    assert "**channelUnsubscribe is ON** for eu/newsletter:" in markdown
    assert "**resubscribe: allowed** for eu/newsletter:" in markdown


def test_a_mention_after_a_letter_outside_ascii_notifies_no_one():
    """GitHub takes `@name` as a mention after any character but an ASCII letter, digit or
    `_` (its pattern's `\\W` is ASCII's): `café@acme/growth` and `日本@ann` notified the team
    and the user on every post of the plan, where Python's `\\w`, which `é` is, saw a word
    going on. An address (`admin@evil.example`) is no link either: GitHub makes a mailto:
    link of it."""
    name = "café@acme/growth 日本@ann Ω@bob admin@evil.example"
    plan = _plan(_named(list_name=name))
    html = MarkdownIt("commonmark").enable("table").render(plan_markdown(plan))
    text = re.sub(r"<code[^>]*>.*?</code>", "", html, flags=re.S).replace("&#8203;", "\u200b")
    text = re.sub(r"<pre>.*?</pre>", "", text, flags=re.S)
    # GitHub's mention pattern, `(?:^|\W)@name` with Ruby's ASCII `\W`; and GFM's
    # extended email autolink, a name's `@` before a domain.
    assert re.search(r"(?<![A-Za-z0-9_])@[A-Za-z0-9]", text) is None
    assert re.search(r"[\w.+-]@[A-Za-z0-9-]+\.", text) is None
    # The name still reads as written (a zero-width space is invisible).
    assert "café@\u200bacme/growth 日本@\u200bann Ω@\u200bbob admin@\u200bevil.example" in text


def test_a_tower_of_combining_marks_cannot_cover_the_rows_around_it():
    """Combining marks stack on the letter before them: a list name of a letter and a
    hundred accents (Iterable's names take any text, and a pull request's manifest too)
    drew a tower over the rows above and below it in the comment, hiding what they say
    (a list to delete, a warning). Past the few marks a script puts on one letter, each
    shows as its escape; a Vietnamese name, two marks on a letter, is as written."""
    tower = "VIP" + "\u0301\u0310" * 50
    viet = unicodedata.normalize("NFD", "Tiếng Việt")
    plan = _plan(_named(list_name=tower), _named(list_name=viet, list_id=8))
    for text in (plan_markdown(plan), plan_text(plan)):
        runs = re.findall(r"[\u0300-\u036f]+", text)
        assert runs and max(len(run) for run in runs) <= 4
        assert "VIP\u0301\u0310\u0301\u0310\\u0301\\u0310" in text
        assert viet in text
