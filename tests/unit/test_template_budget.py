"""A trait template's work is bounded: every template that would hang or exhaust memory
stops with TemplateBudgetExceeded, and the run stops with an error naming the mapping,
the field and the row (never the member)."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.manifest import load_manifests
from reconciler.state.desired import build_desired
from reconciler.traits import template as template_module
from reconciler.traits.template import Template, TemplateBudgetExceeded, TemplateRenderError

HOSTILE = [
    # exponents and products of integers
    "{{ (x|length) ** (9 ** 9) }}",
    "{{ 9 ** (9 ** 9) }}",
    "{% set ns = namespace(n=3) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}"
    "{% endfor %}{{ ns.n }}",
    # repetitions and concatenations
    "{{ 'x' * 50000000000 }}",
    "{{ x * 10000000 }}",
    "{{ (range(100000)|list) * 100000 }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s }}",
    # widths, formats, replacements, joins
    "{{ x|center(10000000000) }}",
    "{{ x|indent(10000000000) }}",
    "{{ x.ljust(10000000000) }}",
    "{{ x.zfill(10000000000) }}",
    "{{ (x|length).to_bytes(10000000000, 'big') }}",
    "{{ [x]|batch(1000000000, x)|list }}",
    "{{ [x]|slice(1000000000)|list }}",
    "{{ '%999999999s'|format(x) }}",
    "{{ '%*s' % (999999999, x) }}",
    "{{ '{:>999999999}'.format(x) }}",
    "{{ '{:>{w}}'.format(x, w=999999999) }}",
    "{{ (x * 30000)|replace('', x * 30000) }}",
    "{{ (x * 30000).replace('', x * 30000) }}",
    "{{ ([x * 30000] * 6)|join }}",
    # time: nested loops, exponential macros, endless output
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% for c in x %}{% endfor %}"
    "{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    "{{ f(60) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ x }}{% endfor %}{% endfor %}",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_template_over_its_budget_stops(text: str) -> None:
    template = Template(text)
    with pytest.raises(TemplateBudgetExceeded) as raised:
        template.render({"x": "abc"})
    assert "the template" in raised.value.reason


# Each of these passed the checks above and then made gigabytes in one step, or took many
# seconds to turn a value into text, before the budget counted what a value holds and what
# a render makes in all. Each must be refused by the check that foresees it: not "ran out
# of memory" (which needs that memory first), not "ran longer" (seconds per row), nor by
# measuring the result (after making it).
HOLDS = "a collection too large (counting what it holds)"
# One list of 999 numbers, held 10,000 times (its text: 49 MB) in lists of ten.
NESTED = (
    "{% set a = range(999)|list %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}"
    "{% set c = [b, b, b, b, b, b, b, b, b, b] %}{% set d = [c, c, c, c, c, c, c, c, c, c] %}"
    "{% set e = [d, d, d, d, d, d, d, d, d, d] %}"
)
HOSTILE_BEFORE_ALLOCATING = [
    ("{{ x.encode() * 5000000000 }}", "a repetition"),
    ("{{ ('y' * 99999).join(x * 33333) }}", "a joined string"),
    ("{{ (x * 33333)|join('y' * 99999) }}", "a joined string"),
    ("{{ ('\\t' * 99999).expandtabs(99999) }}", "an expanded string"),
    ("{{ ((x ~ '\\n') * 24999)|indent(99999) }}", "an indented string"),
    ("{{ ((x ~ '\\n') * 24999)|indent('y' * 99999) }}", "an indented string"),
    ("{{ (x * 33333).translate({97: 'y' * 99999}) }}", "a translated string"),
    ("{{ (x * 33333).encode().translate({97: 'y' * 99999}) }}", "a translated string"),
    # The sandbox hands str.format out wrapped: its width made the 1 GB string first.
    ("{{ '{:>999999999}'.format(x) }}", "a formatted value of unbounded width"),
    ("{{ '{a:>999999999}'.format_map({'a': x}) }}", "a formatted value of unbounded width"),
    ("{{ (x * 30000).encode().replace(''.encode(), (x * 30000).encode()) }}", "a replaced"),
    ("{{ ('y' * 99999).encode().join((x * 33333).encode()) }}", "a joined string"),
    ("{{ ((x ~ ' ') * 24999)|wordwrap(1, true, 'y' * 99999) }}", "a wrapped string"),
    ("{{ (('www.a.com ') * 9999)|urlize(target='y' * 99999) }}", "a string with links"),
    ("{{ range(99999)|map('center', 99999)|list }}", "more than 10,000,000"),
    ("{{ range(99999)|map('center', 99999)|join }}", "more than 10,000,000"),
    ("{% set a = range(99999)|list %}{{ ([a] * 99999)|length }}", "a repetition"),
    ("{% set a = range(99999)|list %}{{ dict.fromkeys(range(99999), a)|string }}", HOLDS),
    (NESTED + "{{ e }}", HOLDS),
    (NESTED + "{{ 'v' ~ e }}", HOLDS),
    (NESTED + "{{ '%s'|format(e) }}", HOLDS),
    ("{% set ns = namespace(a=range(99999)|list) %}{{ [ns] * 99999 }}", "a repetition"),
    # A printf-style format's widths and precisions, as Python's grammar places them.
    ("{{ '%(a)-0999999999d' % {'a': 1} }}", "a formatted value of unbounded width"),
    ("{{ '%.999999999f' % 1.5 }}", "a formatted value of unbounded width"),
    ("{{ '%*.*f' % (5, 999999999, 1.5) }}", "a formatted value of unbounded width"),
    ("{{ '%-*s' % (-999999999, x) }}", "a formatted value of unbounded width"),
    ("{{ 'order 1: %%999999999s %s'|format('%' ~ x)|format(x) }}", "a formatted value"),
    # One long value written many times: 2 GB and 3.3 GB were made before being measured.
    ("{{ ('%(a)s' * 19999) % {'a': x * 33333} }}", "a formatted string too long"),
    ("{{ ('{0}' * 33333).format(x * 33333) }}", "a formatted string too long"),
    ("{{ ('{a}' * 33333).format_map({'a': x * 33333}) }}", "a formatted string too long"),
    ("{{ ('%d' * 49999) % ((2 ** 4095,) * 49999) }}", "a formatted string too long"),
    ("{{ ('%99999s' * 999) % ((x,) * 999) }}", "a formatted string too long"),
    ("{{ '%999999999b'.encode() % (x.encode(),) }}", "a formatted value of unbounded width"),
    # Each part of the grammar before the conversion read: a length modifier, two flags.
    ("{{ '%09999999ld' % 1 }}", "a formatted value of unbounded width"),
    ("{{ '%(a)-+9999999d' % {'a': 1} }}", "a formatted value of unbounded width"),
    # The literal text counts, a `%%` as one character, after the last conversion too.
    ("{{ ('%%' * 30000 ~ '%s') % (x * 25000) }}", "a formatted string too long"),
    ("{{ ('%s' ~ 'y' * 60000) % (x * 15000) }}", "a formatted string too long"),
    ("{{ '{:{w.real}}'.format(x, w=999999999) }}", "a formatted value of unbounded width"),
    ("{{ '{:>{}}'.format(x, '999999999') }}", "a formatted value of unbounded width"),
    ("{{ (range(99999)|batch(1)|sum(start=[]))|length }}", "a sum of 99,999 lists"),
]


@pytest.mark.parametrize(("text", "reason"), HOSTILE_BEFORE_ALLOCATING)
def test_a_template_is_refused_before_it_makes_a_huge_value(
    text: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The size checks, not the clock: on a machine loaded enough (a shared CI runner, a
    # load average of 13 on 2 cores) counting 99,999 batches can outlast the 1 s budget,
    # and the template is refused as too slow instead, which is right but not this test.
    monkeypatch.setattr(template_module, "MAX_SECONDS", 60.0)
    template = Template(text)
    with pytest.raises(TemplateBudgetExceeded) as raised:
        template.render({"x": "abc"})
    assert f"the template would make {reason}" in raised.value.reason, raised.value.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ first|title }} {{ plan ~ '-' ~ (score * 2) }}", "Ada gold-14"),
        ("{{ '%05d'|format(score) }} {{ '{:>6}'.format(plan) }}", "00007   gold"),
        ("{{ (plan * 3)|upper }}{{ 2 ** 62 }}", "GOLDGOLDGOLD4611686018427387904"),
        ("{% for c in plan %}{{ c }}.{% endfor %}{{ range(3)|join(',') }}", "g.o.l.d.0,1,2"),
        ("{{ first|center(9) }}|{{ [plan, first]|join('/') }}", "   ada   |gold/ada"),
        ("{{ ('a\tb').expandtabs(4) }}|{{ plan|indent(2, true) }}", "a   b|  gold"),
        ("{{ [[1], [2]]|sum(start=[]) }} {{ {'k': [plan]} }}", "[1, 2] {'k': ['gold']}"),
        ("{{ first.translate({97: 'A'}) }} {{ 'ab'|wordwrap(1, true, '-') }}", "AdA a-b"),
        # Digits in str.format's text, outside its fields, are no width.
        ("{{ 'order 1234567: {:>6}'.format(plan) }}", "order 1234567:   gold"),
        ("{{ '1234567 {p}'.format_map({'p': plan}) }}", "1234567 gold"),
        # Nor in a printf-style format's: only a conversion's own width counts.
        ("{{ 'order 1234567: %s' % plan }}", "order 1234567: gold"),
        ("{{ 'order 1234567: %s'|format(plan) }}", "order 1234567: gold"),
        ("{{ '%(p)-6s|%%|%(s)+.2f|%(s)#x' % {'p': plan, 's': score} }}", "gold  |%|+7.00|0x7"),
        ("{{ '%(p)-6s|%%' % {'p': plan} }}", "gold  |%"),
        (
            "{{ '%-*s|%.*f|%05d|%c|%r' % (6, plan, 1, 2.25, score, 65, plan) }}",
            "gold  |2.2|00007|A|'gold'",
        ),
        ("{{ 'id 99999999 %(n)ld'|format(n=score) }}", "id 99999999 7"),
        # A negative precision a `*` takes is none (Python writes nothing), not a size.
        ("{{ '%.*s|' % (-999999999, plan) }}", "|"),
        ("{{ '{:08.3f}'.format(score) }}|{{ '{:>{w}}'.format(plan, w=6) }}", "0007.000|  gold"),
        ("{{ '{:{}}|{:{}.{}}'.format(plan, 5, 2.5, 6, 2) }}", "gold |   2.5"),
    ],
)
def test_ordinary_templates_render_as_before(text: str, expected: str) -> None:
    assert Template(text).render({"first": "ada", "plan": "gold", "score": 7}) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # A fixed fraction of a second, written out: six digits that are only text.
        ("%Y-%m-%dT%H:%M:%S.000000Z", "2024-05-01T09:30:15.000000Z"),
        ("%d.%m.%Y 1000000", "01.05.2024 1000000"),
        ("%Y%m%d000000", "20240501000000"),
        # glibc's strftime does pad to a width written after the `%`.
        ("%10Y|%_4d", "0000002024|   1"),
    ],
)
def test_a_date_s_strftime_spec_has_widths_only_after_its_percent_signs(
    spec: str, expected: str
) -> None:
    """A date's spec ('{:%Y-%m-%dT%H:%M:%S.000000Z}', an inline member's YAML date) was
    refused as 'a formatted value of unbounded width' for any six digits in a row, and the
    run stopped, though strftime writes digits outside a conversion as they are."""
    moment = datetime.datetime(2024, 5, 1, 9, 30, 15)
    text = "{{ '{:" + spec + "}'.format(day) }}"
    assert Template(text).render({"day": moment}) == expected


@pytest.mark.parametrize("spec", ["%999999999Y", "%Y %_0200000d"])
def test_a_date_s_strftime_width_over_the_budget_is_refused(spec: str) -> None:
    with pytest.raises(TemplateBudgetExceeded) as raised:
        Template("{{ '{:" + spec + "}'.format(day) }}").render({"day": datetime.date(2024, 5, 1)})
    assert "a formatted value of unbounded width" in raised.value.reason


@pytest.mark.parametrize("spec", ["%99999999s", "%Y %_0200000s"])
def test_a_date_s_epoch_width_over_the_budget_is_refused_before_it_is_made(spec: str) -> None:
    # reconciler writes `%s` itself (in UTC, as glibc pads it): a width over the budget is
    # refused as in a format, not padded to 100 MB first (glibc wrote nothing of it).
    with pytest.raises(TemplateBudgetExceeded) as raised:
        Template("{{ day.strftime('" + spec + "') }}").render({"day": datetime.date(2024, 5, 1)})
    assert "a formatted value of unbounded width" in raised.value.reason


def test_a_per_row_failure_is_still_a_row_error_not_a_budget() -> None:
    with pytest.raises(TemplateRenderError):
        Template("{{ 2.0 ** score }}").render({"score": 10000})
    with pytest.raises(TemplateRenderError):
        Template("{{ x.append(1) }}").render({"x": []})  # the sandbox is immutable


def test_the_run_stops_naming_the_mapping_field_and_row_not_the_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m" / "data").mkdir(parents=True)
    (tmp_path / "m" / "data" / "churn.csv").write_text(
        "email,first_name\nfine@example.com,a\nsecret.person@example.com,ab\n"
    )
    (tmp_path / "m" / "all.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: reconciler/v1
            kind: Destination
            metadata: {name: prod}
            spec: {region: sandbox, projectType: email}
            ---
            apiVersion: reconciler/v1
            kind: Audience
            metadata: {name: churn}
            spec:
              destination: prod
              traits: crm
              members: {csv: data/churn.csv}
            ---
            apiVersion: reconciler/v1
            kind: TraitMapping
            metadata: {name: crm}
            spec:
              fields:
                greeting: {template: "{{ 'x' * 9 ** (first_name|length * 5) }}"}
            """
        )
    )
    with pytest.raises(SourceError) as raised:
        build_desired(load_manifests(Path("m")))
    message = str(raised.value)
    assert message.startswith("m/all.yaml:19:")
    assert "trait mapping 'crm', field 'greeting'" in message
    assert "churn.csv:3;" in message
    assert "secret" not in message


def test_a_query_source_names_the_query_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "all.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: reconciler/v1
            kind: Destination
            metadata: {name: prod}
            spec: {region: sandbox, projectType: email}
            ---
            apiVersion: reconciler/v1
            kind: Audience
            metadata: {name: q}
            spec:
              destination: prod
              traits: crm
              members:
                sql: "SELECT 'secret.person@example.com' AS email, 'ab' AS first_name"
                database: ':memory:'
            ---
            apiVersion: reconciler/v1
            kind: TraitMapping
            metadata: {name: crm}
            spec:
              fields:
                greeting: {template: "{{ (first_name|length) ** (9 ** 9) }}"}
            """
        )
    )
    with pytest.raises(SourceError) as raised:
        build_desired(load_manifests(Path("m")))
    message = str(raised.value)
    assert message.startswith("m/all.yaml:21:")
    assert "the row at m/all.yaml:13:" in message and "query row 1" in message
    assert "secret" not in message


@pytest.mark.parametrize(
    "text",
    [
        "{{ row[user_id] }}",
        "{{ row[email] }}",
        "{{ {user_id: 1}[email] }}",
        "{{ [1][user_id] }}",
        "{{ email|attr(user_id) }}",
        "{{ ('{0:' ~ user_id ~ '}').format(1) }}",
        "{{ ('{' ~ user_id ~ '}').format() }}",
        "{{ ('%(' ~ email ~ ')s') % {} }}",
    ],
)
def test_a_row_error_never_quotes_the_members_values(text: str) -> None:
    """Python's and jinja's messages quote the value they met, and a template can make a
    member's email or userId that value: the message goes to CI logs and PR comments."""
    row = {"email": "victim.person@example.com", "user_id": "usr_secret_777"}
    with pytest.raises(TemplateRenderError) as raised:
        Template(text).render(row)
    reason = raised.value.reason
    assert "victim" not in reason and "secret" not in reason, reason
    assert "'***'" in reason, reason


def test_a_missing_element_named_by_a_number_is_masked() -> None:
    """jinja names an element by its repr, a number bare: a numeric userId used as an index
    or a key was printed whole ('str object has no element 98765432109')."""
    row = {"user_id": "usr_x", "n": "98765432109"}
    for text in ("{{ user_id[n|int] }}", "{{ {'a': 1}[n|int] }}"):
        with pytest.raises(TemplateRenderError) as raised:
            Template(text).render(row)
        assert "8765" not in raised.value.reason, raised.value.reason
        assert raised.value.reason.endswith("has no element ***"), raised.value.reason
    with pytest.raises(TemplateRenderError) as raised:
        Template("{{ user_id.encode(n) }}").render(row)
    assert raised.value.reason == "LookupError: unknown encoding: ***"
    with pytest.raises(TemplateRenderError) as raised:
        Template("{{ user_id[99] }}").render(row)  # the template's own number stays
    assert raised.value.reason.endswith("has no element 99")


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'x' * (n|int) }}",
        "{{ [1] * (n|int) }}",
        "{{ user_id.zfill(n|int) }}",
        "{{ user_id|center(n|int) }}",
        "{{ user_id|indent(n|int) }}",
        "{{ user_id|batch(n|int)|list }}",
    ],
)
def test_a_budget_stop_never_quotes_a_count_from_the_row(text: str) -> None:
    """The run's stop named the repetition count or width, which the template made of a
    member's numeric userId: 'a repetition 98,765,432,109 times of 1' in the CI log."""
    with pytest.raises(TemplateBudgetExceeded) as raised:
        Template(text).render({"user_id": "usr_x", "n": "98765432109"})
    reason = raised.value.reason
    assert "8765" not in reason.replace(",", ""), reason
    assert reason.startswith("the template would make a "), reason


def test_a_method_called_with_too_few_arguments_is_named_by_python() -> None:
    """`x.replace('a')` was "_check_replace() missing 1 required positional argument:
    '***'": the budget's own check failed on the call before Python could name it. Python's
    own words, whichever Python runs the tests: 3.13 says "replace() takes at least 2
    positional arguments (1 given)" where 3.11 said "replace expected at least 2 arguments,
    got 1", and the suite failed on 3.13, which pyproject's requires-python admits."""
    with pytest.raises(TypeError) as python:
        "ada".replace("a")  # type: ignore[call-arg]
    with pytest.raises(TemplateRenderError) as raised:
        Template("{{ first_name.replace('a') }}").render({"first_name": "ada"})
    assert raised.value.reason == f"TypeError: {python.value}"


def test_a_row_error_still_names_what_the_template_wrote() -> None:
    with pytest.raises(TemplateRenderError) as raised:
        Template("{{ first_nam|title }}").render({"first_name": "ada"})
    assert raised.value.reason == "undefined variable: 'first_nam' is undefined"
    with pytest.raises(TemplateRenderError) as raised:
        Template("{{ first_name.nope() }}").render({"first_name": "ada"})
    assert raised.value.reason == "undefined variable: 'str object' has no attribute 'nope'"


@pytest.mark.parametrize(
    "text",
    [
        "{{ ('{0:' ~ userId ~ '}').format(1) }}",
        "{{ ('%' ~ userId ~ 'd') % 1 }}",
        "{{ '%*d' % (userId|int, 1) }}",
        "{{ ('{0:.' ~ userId ~ 'f}').format(1) }}",
        "{{ '{:>{w}}'.format(1, w=userId) }}",
    ],
)
def test_a_width_made_from_the_rows_values_fails_that_row_not_the_run(text: str) -> None:
    """A spec built from member data with a 7-digit userId stopped the whole run as over
    budget, where a spec a non-numeric userId made failed only its row: the width is
    refused before anything is made, so the other rows need not stop, and the reason
    must not quote the width, which is the member's userId."""
    with pytest.raises(TemplateRenderError) as raised:
        Template(text).render({"userId": "1234567"})
    assert raised.value.reason == template_module.WIDTH_FROM_ROW
    assert "1234567" not in raised.value.reason
    assert Template(text).render({"userId": "12"}).strip() in ("1", "1.000000000000")


def test_a_row_whose_userid_makes_too_wide_a_format_is_skipped_and_the_plan_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m" / "data").mkdir(parents=True)
    (tmp_path / "m" / "data" / "ids.csv").write_text("userId\n12\n1234567\n34\n")
    (tmp_path / "m" / "all.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: reconciler/v1
            kind: Destination
            metadata: {name: prod}
            spec: {region: sandbox, projectType: userId}
            ---
            apiVersion: reconciler/v1
            kind: Audience
            metadata: {name: ids}
            spec:
              destination: prod
              traits: crm
              members: {csv: data/ids.csv}
            ---
            apiVersion: reconciler/v1
            kind: TraitMapping
            metadata: {name: crm}
            spec:
              fields:
                code: {template: "{{ ('{0:>' ~ userId ~ '}').format('x') }}"}
            """
        )
    )
    (desired,) = build_desired(load_manifests(Path("m")))["prod"].lists
    assert desired.fields is not None
    values = desired.fields.values.values()
    assert sorted(len(v["code"]) for v in values if "code" in v) == [12, 34]
    (issue,) = desired.fields.issues
    assert issue.where.endswith("ids.csv:3") and "1234567" not in issue.message


@pytest.mark.parametrize(
    "text",
    [
        # Each %c writes 24 characters of a 2-character spec: sized by what it writes.
        "{{ '{:" + "%c" * 5000 + "}'.format(day) }}",
        # A float in fixed notation writes all its digits (1e300: 301), not its str().
        "{{ ('{:f}' * 400).format(*([1e300] * 400)) }}",
    ],
)
def test_a_format_is_sized_by_what_its_conversions_write_before_it_runs(text: str) -> None:
    with pytest.raises(TemplateBudgetExceeded) as raised:
        Template(text).render({"day": datetime.date(2024, 5, 1)})
    assert "a formatted string too long" in raised.value.reason


def test_a_date_s_percent_signs_are_sized_as_the_one_character_each_writes() -> None:
    # 40,000 '%%' write 40,000 characters, within the budget: not 40,000 conversions.
    text = "{{ '{:" + "%%" * 40_000 + "}'.format(day) }}"
    assert Template(text).render({"day": datetime.date(2024, 5, 1)}) == "%" * 40_000


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{{ n / 0 }}", "division by zero"),
        ("{{ n // 0 }}", "division by zero"),
        ("{{ n % 0 }}", "modulo by zero"),
        ("{{ n + word }}", "cannot apply + to a whole number and text"),
        ("{{ word + n }}", "cannot apply + to text and a whole number"),
        ("{{ empty - 1 }}", "cannot apply - to an empty value (None) and a whole number"),
        ("{{ empty < 3 }}", "cannot compare (<) an empty value (None) with a whole number"),
        ("{{ empty | length }}", "an empty value (None) has no length"),
        ("{{ empty | round }}", "cannot round an empty value (None)"),
        ("{{ empty.upper() }}", "an empty value (None) has no attribute 'upper'"),
    ],
)
def test_common_template_failures_are_said_in_words_without_the_rows_values(
    text: str, said: str
) -> None:
    """A template failing on a row said Python's class names ("ZeroDivisionError: division
    by zero", "TypeError: unsupported operand type(s) for +: 'int' and 'str'"); the common
    ones are now said in words, naming the values' types and never the values."""
    row = {"n": 98765, "word": "jane@example.com", "empty": None}
    with pytest.raises(TemplateRenderError) as raised:
        Template(text).render(row)
    reason = raised.value.reason
    assert reason == said
    assert "98765" not in reason and "jane" not in reason


def test_a_failure_not_said_in_words_keeps_pythons() -> None:
    from reconciler.traits.template_words import in_words

    assert in_words(ValueError("math domain error")) == "ValueError: math domain error"
    assert in_words(TypeError("an unusual failure")) == "TypeError: an unusual failure"
    # A type outside the common ones is named as Python names it.
    said = in_words(TypeError("unsupported operand type(s) for -: 'set' and 'int'"))
    assert said == "cannot apply - to a set value and a whole number"


@pytest.mark.parametrize(
    "text",
    ["{{ word | truncate(n) }}", "{{ word | truncate(2) }}", "{{ word | truncate(9, leeway=-n) }}"],
)
def test_a_truncate_length_its_end_does_not_fit_fails_the_row_not_the_run(text: str) -> None:
    """jinja's truncate asserts its length is at least its end's ('...') and its leeway
    not negative: a length from the row (`truncate(n)`, n 0 there) or a slip
    (`truncate(2)`) raised AssertionError, which ended validate and plan as 'internal
    error: AssertionError: expected length >= 3, got 0 ... This is a bug in reconciler'.
    It is the row's failure now, said without the number (it can be a member's value)."""
    row = {"n": 1, "word": "jane@example.com"}
    with pytest.raises(TemplateRenderError) as raised:
        Template(text).render(row)
    reason = raised.value.reason
    assert reason.startswith("ValueError: the truncate filter refused its arguments ("), reason
    assert "jane" not in reason and "got" not in reason
