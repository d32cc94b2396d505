"""TraitMapping documents: loading, every problem located at once, the JSON Schema, and bad
values reported with their source row."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from reconciler.errors import ManifestError
from reconciler.manifest import load_manifests, manifest_json_schema
from reconciler.state.desired import build_desired

BASE = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec: {region: sandbox, projectType: hybrid}
---
apiVersion: reconciler/v1
kind: Audience
metadata: {name: churn}
spec:
  destination: prod
  traits: crm
  members: {csv: data/churn.csv, userId: user_id}
"""

MAPPING = """\
apiVersion: reconciler/v1
kind: TraitMapping
metadata: {name: crm}
spec:
  mergeNestedObjects: true
  fields:
    planTier: plan
    ltv: {from: lifetime_value, type: number}
    greeting: {template: "Hi {{ first_name | title }}"}
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(path: str, text: str) -> None:
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(textwrap.dedent(text), encoding="utf-8")


def csv(*rows: str, header: str = "email,user_id,plan,lifetime_value,first_name") -> None:
    write("m/data/churn.csv", "\n".join([header, *rows]) + "\n")


def problems() -> list[str]:
    with pytest.raises(ManifestError) as raised:
        load_manifests(Path("m"))
    return [str(p) for p in raised.value.problems]


def test_a_valid_mapping_loads_with_its_fields_in_long_form() -> None:
    write("m/all.yaml", BASE)
    write("m/traits.yaml", MAPPING)
    csv("a@example.com,u-1,pro,10,ada")
    manifests = load_manifests(Path("m"))
    crm = manifests.trait_mappings["crm"]
    specs = crm.spec.field_specs()
    assert (specs["planTier"].from_, specs["planTier"].type) == ("plan", None)
    assert (specs["ltv"].from_, specs["ltv"].type) == ("lifetime_value", "number")
    assert specs["greeting"].template == "Hi {{ first_name | title }}"
    assert crm.spec.mergeNestedObjects is True
    assert str(crm.field_location("fields", "ltv")) == "m/traits.yaml:8:5"


def test_every_problem_is_reported_at_once_with_its_location() -> None:
    write("m/all.yaml", BASE.replace("traits: crm", "traits: crn"))
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            ltv: {from: lifetime_value, type: money}
            greeting: {template: "Hi {{ first_name "}
            both: {from: a, template: b}
            userListIds: plan
            a.b: plan
            odd: {form: plan}
        """,
    )
    csv("a@example.com,u-1,pro,10,ada")
    assert problems() == [
        "m/all.yaml:11:11: spec.traits: unknown trait mapping 'crn'; known trait mappings: crm",
        "m/traits.yaml:6:39: spec.fields.ltv.type: expected one of string, number, boolean, "
        "date, object, list; got 'money'",
        "m/traits.yaml:7:26: spec.fields.greeting.template: template syntax error: unexpected "
        "end of template, expected 'end of print statement'.",
        "m/traits.yaml:8:5: spec.fields.both: give exactly one of from, template",
        "m/traits.yaml:9:5: spec.fields: key 'userListIds': userListIds is a field Iterable "
        "manages itself; a trait mapping cannot write it (list membership changes only "
        "through subscribe and unsubscribe)",
        "m/traits.yaml:10:5: spec.fields: key 'a.b': expected a field name: 1-200 characters, "
        "no spaces at either end, no '.' (a field inside an object is written as the object: "
        "a field of type: object, with the mapping's mergeNestedObjects: true to keep the "
        "object's other keys)",
        "m/traits.yaml:11:11: unknown key 'form' in spec.fields.odd (did you mean 'from'?); "
        "allowed: from, template, type, maxChangePercent",
    ]


def test_an_error_in_a_block_template_is_located_at_its_own_line() -> None:
    """It was located at the `|`, leaving the reader to count the template's lines."""
    write("m/all.yaml", BASE)
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            greeting:
              template: |
                {% if plan == "pro" %}
                  Hi {{ first_name }}
                {% else %}
                  Hello {{ first_name | titel }}
                {% endif %}
        """,
    )
    csv("a@example.com,u-1,pro,10,ada")
    assert problems() == [
        "m/traits.yaml:11: spec.fields.greeting.template: template syntax error: No filter "
        "named 'titel' (did you mean 'title'?). (line 4 of the template)"
    ]


def test_unknown_columns_are_checked_against_the_csv_header() -> None:
    write("m/all.yaml", BASE)
    write(
        "m/traits.yaml",
        MAPPING.replace("planTier: plan", "planTier: plann").replace(
            "first_name | title", "firstname | title"
        ),
    )
    csv("a@example.com,u-1,pro,10,ada")
    source = "the header of m/data/churn.csv (the source of audience 'churn' at m/all.yaml:11:11)"
    columns = "columns are: email, user_id, plan, lifetime_value, first_name"
    assert problems() == [
        f"m/traits.yaml:7:15: spec.fields.planTier: column 'plann' is not in {source} "
        f"(did you mean 'plan'?); {columns}",
        f"m/traits.yaml:9:26: spec.fields.greeting: template variable 'firstname' is not in "
        f"{source} (did you mean 'first_name'?); {columns}",
    ]


def test_a_column_the_mapping_reads_that_the_header_names_twice_is_refused() -> None:
    # A CRM report with two columns labelled alike (Salesforce's `Plan` of the contact and
    # of the account): the rows are read by name, so one of them was sent without a word.
    write("m/all.yaml", BASE)
    write("m/traits.yaml", MAPPING.replace("Hi {{ first_name | title }}", "{{ plan }}"))
    Path("m/data").mkdir(parents=True)
    Path("m/data/churn.csv").write_bytes(
        b"email,user_id,plan,lifetime_value,plan,first_name\r\n"
        b"a@example.com,u-1,pro,10,gold,ada\r\n"
    )
    source = "the header of m/data/churn.csv has 2 columns named 'plan'"
    used_by = "(the source of audience 'churn' at m/all.yaml:11:11)"
    why = "reconciler will not guess which one holds the values; rename the others"
    assert problems() == [
        f"m/traits.yaml:7:15: spec.fields.planTier: {source} {used_by}: {why}",
        f"m/traits.yaml:9:26: spec.fields.greeting: {source} {used_by}: {why}",
    ]


def test_a_column_named_twice_that_no_field_reads_is_no_problem() -> None:
    # Trailing empty columns (`,,`, as Google Sheets exports them) and a repeated column
    # the mapping does not read are left alone.
    write("m/all.yaml", BASE)
    write("m/traits.yaml", MAPPING)
    csv(
        "a@example.com,u-1,pro,10,ada,x,y,,",
        header="email,user_id,plan,lifetime_value,first_name,note,note,,",
    )
    load_manifests(Path("m"))


def test_no_column_is_suggested_from_a_header_that_looks_like_member_data() -> None:
    # A CSV without a header row: its first member is the header, whose values are masked
    # in every output; a suggestion would print one ('plans') in the clear.
    write("m/all.yaml", BASE)
    write("m/traits.yaml", MAPPING)
    csv("b@example.com,u-2,free,1,bob", header="ann@example.com,u-1,plans,10,ann")
    found = problems()
    assert found and not any("did you mean" in problem for problem in found)


def test_a_source_refused_by_its_path_is_not_read_for_its_columns(tmp_path: Path) -> None:
    """The column check ran before the path check: a CSV outside the repository had its
    header read and quoted (a named pipe hung validate: test_hostile_manifests)."""
    write("m/all.yaml", BASE.replace("data/churn.csv", "../outside.csv"))
    write("m/traits.yaml", MAPPING)
    Path("outside.csv").write_text("email,salary_band\n")
    Path("m/.git").mkdir()  # the repository is m/: outside.csv is outside it
    (problem,) = problems()
    assert problem.startswith("m/all.yaml:12:18: members.csv: ../outside.csv is outside the")
    assert "salary_band" not in problem


def test_unknown_columns_are_checked_against_a_parquet_files_columns() -> None:
    """They were checked only when plan read the rows: one field at a time, at the
    audience's line, as a source that cannot be read."""
    import duckdb

    write("m/all.yaml", BASE.replace("members: {csv: data/churn.csv", "members: {parquet: p.pq"))
    write("m/traits.yaml", MAPPING)
    duckdb.sql(
        "COPY (SELECT 'a@example.com' AS email, 'u-1' AS user_id, 'pro' AS plan) "
        "TO 'm/p.pq' (FORMAT parquet)"
    )
    source = "the columns of m/p.pq (the source of audience 'churn' at m/all.yaml:11:11)"
    columns = "columns are: email, user_id, plan"
    assert problems() == [
        f"m/traits.yaml:8:17: spec.fields.ltv: column 'lifetime_value' is not in {source}; "
        f"{columns}",
        f"m/traits.yaml:9:26: spec.fields.greeting: template variable 'first_name' is not in "
        f"{source}; {columns}",
    ]


def test_unknown_columns_are_checked_against_inline_member_keys() -> None:
    write(
        "m/all.yaml",
        BASE.replace(
            "members: {csv: data/churn.csv, userId: user_id}",
            "members: {inline: [{email: a@example.com, plan: pro, first_name: ada}]}",
        ),
    )
    write("m/traits.yaml", MAPPING)
    (problem,) = problems()
    assert problem.startswith(
        "m/traits.yaml:8:17: spec.fields.ltv: column 'lifetime_value' is not in the keys of "
        "its inline members"
    )
    assert problem.endswith("columns are: email, userId, plan, first_name")


def test_an_audience_whose_inline_members_were_all_removed_keeps_its_trait_mapping() -> None:
    # The last member taken out of an allowEmpty audience: there are no keys to miss a
    # column, and nothing to write. The mapping's columns were refused ("'plan' is not in
    # the keys of its inline members; columns are: email, userId"), so emptying the list
    # also meant taking `traits:` out, and putting it back with the first new member.
    write(
        "m/all.yaml",
        BASE.replace(
            "members: {csv: data/churn.csv, userId: user_id}",
            "members: {inline: []}\n  allowEmpty: true",
        ),
    )
    write("m/traits.yaml", MAPPING)
    desired = build_desired(load_manifests(Path("m")))
    (item,) = desired["prod"].lists
    assert dict(item.members) == {}
    assert item.fields is not None and item.fields.values == {}


def test_bad_values_are_reported_with_file_row_column_and_value(tmp_path: Path) -> None:
    write("m/all.yaml", BASE)
    write("m/traits.yaml", MAPPING)
    csv("a@example.com,u-1,pro,10,ada", "b@example.com,u-2,free,lots,bob")
    desired = build_desired(load_manifests(Path("m")))
    (item,) = desired["prod"].lists
    assert [str(i) for i in item.fields.issues] == [
        "m/data/churn.csv:3: field 'ltv' (column 'lifetime_value'): 'lots' is not a "
        "number; the field is not written for this member"
    ]
    assert item.fields is not None
    # The member stays, and so do its other fields.
    assert set(item.members) == {"u-1", "u-2"}
    assert item.fields.values["u-2"] == {"planTier": "free", "greeting": "Hi Bob"}
    assert item.fields.values["u-1"] == {"planTier": "pro", "ltv": 10, "greeting": "Hi Ada"}


def test_a_whole_number_beyond_64_bits_is_not_sent(tmp_path: Path) -> None:
    # Iterable stores a whole number as a long: 123456789012345678901234 went out as a
    # JSON integer, which a long field refuses and a new field holds rounded, if at all.
    # Its bounds go out as they are, and a number with a decimal point is a double.
    write("m/all.yaml", BASE)
    write("m/traits.yaml", MAPPING)
    csv(
        "a@example.com,u-1,pro,9223372036854775807,ada",
        "b@example.com,u-2,pro,-9223372036854775808,bob",
        "c@example.com,u-3,pro,9223372036854775808,cy",
        "d@example.com,u-4,pro,-123456789012345678901234,di",
        "e@example.com,u-5,pro,1.5e23,ed",
    )
    desired = build_desired(load_manifests(Path("m")))
    (item,) = desired["prod"].lists
    assert item.fields is not None
    beyond = (
        "holds a whole number beyond the 64 bits Iterable stores one in (at most "
        "9,223,372,036,854,775,807), which it would refuse or round (type: string sends its "
        "digits as text; a decimal point, 1.5e23, sends a double); the field is not written "
        "for this member"
    )
    assert [str(i) for i in item.fields.issues] == [
        f"m/data/churn.csv:4: field 'ltv' (column 'lifetime_value'): '9223372036854775808' "
        f"{beyond}",
        f"m/data/churn.csv:5: field 'ltv' (column 'lifetime_value'): "
        f"'-123456789012345678901234' {beyond}",
    ]
    ltv = {key: values.get("ltv") for key, values in item.fields.values.items()}
    assert ltv == {
        "u-1": 2**63 - 1,
        "u-2": -(2**63),
        "u-3": None,
        "u-4": None,
        "u-5": 1.5e23,
    }


def test_an_undefined_template_variable_names_the_row(tmp_path: Path) -> None:
    write(
        "m/all.yaml",
        BASE.replace(
            "members: {csv: data/churn.csv, userId: user_id}",
            "members: {inline: [{email: a@example.com, plan: pro, lifetime_value: 3, "
            "first_name: ada}, {email: b@example.com, plan: free, lifetime_value: 1}]}",
        ),
    )
    write("m/traits.yaml", MAPPING)
    desired = build_desired(load_manifests(Path("m")))
    (item,) = desired["prod"].lists
    assert [str(i) for i in item.fields.issues] == [
        "m/all.yaml:12:93: field 'greeting' (template at m/traits.yaml:9:26): undefined "
        "variable: 'first_name' is undefined; the field is not written for this member"
    ]


# -- the JSON Schema ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("email", "it identifies the user: writing it changes whose profile this is"),
        ("userId", "it identifies the user: writing it changes whose profile this is"),
        ("emailListIds", "list membership changes only through subscribe and unsubscribe"),
        (
            "unsubscribedMessageTypeIds",
            "it holds the person's consent: a user update changes it with no subscribe or "
            "unsubscribe event",
        ),
        (
            "subscribedMessageTypeIds",
            "it holds the person's consent: a user update changes it with no subscribe or "
            "unsubscribe event",
        ),
        (
            "unsubscribedChannelIds",
            "it holds the person's consent: a user update changes it with no subscribe or "
            "unsubscribe event",
        ),
        ("itblInternal", "Iterable sets it itself"),
        ("itblUserId", "Iterable sets it itself"),
        ("signupSource", "Iterable sets it itself"),
        ("profileUpdatedAt", "Iterable sets it itself"),
        (
            "devices",
            "it holds the person's push registrations: a user update replaces them with no "
            "subscribe or unsubscribe event",
        ),
        (
            "browserTokens",
            "it holds the person's push registrations: a user update replaces them with no "
            "subscribe or unsubscribe event",
        ),
    ],
)
def test_a_field_iterable_manages_is_refused_with_its_place_and_why(
    field: str, reason: str
) -> None:
    # Iterable's support article 217744303 lists the fields it manages, which "should not
    # be included in calls to POST /api/users/update or other endpoints that update user
    # profiles"; the OpenAPI's bulkUpdate says an update of emailListIds,
    # unsubscribedChannelIds or unsubscribedMessageTypeIds makes no subscribe or
    # unsubscribe event. A mapping writing the message-type ids overwrote every member's
    # opt-outs on the subscribe itself.
    write("m/all.yaml", BASE)
    write(
        "m/traits.yaml",
        f"""\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {{name: crm}}
        spec:
          fields:
            planTier: plan
            {field}: plan
        """,
    )
    csv("a@example.com,u-1,pro,10,ada")
    assert problems() == [
        f"m/traits.yaml:7:5: spec.fields: key '{field}': {field} is a field Iterable manages "
        f"itself; a trait mapping cannot write it ({reason})"
    ]


def test_a_field_differing_from_a_managed_one_only_in_case_is_a_field_of_its_own() -> None:
    # "All user profile fields are case-sensitive and space-sensitive" (support article
    # 217744303): `Email` is a custom field, not the user's identity.
    write("m/all.yaml", BASE)
    write("m/traits.yaml", MAPPING.replace("planTier: plan", "Email: plan"))
    csv("a@example.com,u-1,pro,10,ada")
    assert "Email" in load_manifests(Path("m")).trait_mappings["crm"].spec.fields


def documents(text: str) -> list[Any]:
    return [d for d in YAML(typ="safe").load_all(text) if d]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_json_schema())


def test_schema_accepts_mappings_and_audiences_that_name_them(
    validator: Draft202012Validator,
) -> None:
    for document in documents(BASE + "---\n" + MAPPING):
        assert list(validator.iter_errors(document)) == []


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"ltv": {"from": "a", "type": "money"}},
        {"ltv": {"from": "a", "template": "b"}},
        {"ltv": {"type": "number"}},
        {"ltv": {"form": "a"}},
        {"ltv": 7},
        {"a.b": "c"},
        {"userListIds": "plan"},
        {"unsubscribedMessageTypeIds": "plan"},
        {"itblInternal": "plan"},
        {"devices": "plan"},
        {"browserTokens": "plan"},
    ],
)
def test_schema_rejects_what_the_loader_rejects(
    validator: Draft202012Validator, fields: dict[str, Any]
) -> None:
    (mapping,) = documents(MAPPING)
    mapping["spec"]["fields"] = fields
    assert list(validator.iter_errors(mapping)) != []
    write("m/all.yaml", BASE.replace("traits: crm\n", ""))
    with open("m/traits.yaml", "w", encoding="utf-8") as stream:
        YAML(typ="safe").dump(mapping, stream)
    csv()
    assert problems() != []


def test_inline_values_yaml_readers_disagree_on_are_warned_at_their_line() -> None:
    """`vip: yes` is the text 'yes' in the YAML 1.2 reconciler reads, sent so to a field
    with no type (which Iterable then types string for good), where YAML 1.1 tools
    (PyYAML, yamllint) and a reviewer used to them read true; `zip: 01234` is the number
    1234 everywhere, its zero lost. Neither was said. Quoted, tagged or typed values say
    what they are, so they are not warned of; nor are the members' values echoed."""
    write(
        "m/all.yaml",
        BASE.replace(
            "members: {csv: data/churn.csv, userId: user_id}",
            """members:
    inline:
      - {email: a@example.com, vip: yes, zip: 01234, optIn: 'no', code: 0777}
      - {email: b@example.com, vip: Off, zip: "01234", optIn: !!str on, code: 0777}
      - email: c@example.com
        vip: true
        zip: 12345
        optIn: on
        code: 10""",
        ),
    )
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            vip: vip
            zip: {from: zip}
            optIn: {from: optIn, type: boolean}
            code: {from: code, type: string}
        """,
    )
    warnings = [str(w) for w in load_manifests(Path("m")).warnings]
    assert warnings == [
        "m/all.yaml:14:37: audience 'churn': vip: yes is the text 'yes' in YAML 1.2, which "
        "reconciler reads, and field 'vip' (no type) sends it as that text, where YAML 1.1 "
        "tools (PyYAML, yamllint) read true; write true or false to send a boolean, or "
        "quote it to send the text (and 1 more member written so)",
        "m/all.yaml:14:47: audience 'churn': zip: a number written with a leading zero is "
        "read as the number without it, and field 'zip' (no type) sends that number; quote "
        "it, or give the field type: string, to send the digits as written",
    ]


def test_a_number_yaml_reads_from_other_text_than_its_digits_is_warned_of() -> None:
    """`phone: +4915112345678` is the number 4915112345678 to YAML, its plus lost, and
    `sku: 12_34` and `code: 0x1F` the numbers 1234 and 31: a field with no type sent
    those numbers without a word, and Iterable typed a new field `phone` long for good.
    Written so, such a number is warned of as a leading zero is; `1.5`, `-3` and `1e3`,
    numbers as written, are not."""
    write(
        "m/all.yaml",
        BASE.replace(
            "members: {csv: data/churn.csv, userId: user_id}",
            """members:
    inline:
      - {email: a@example.com, phone: +4915112345678, sku: 98_76, code: 0x2A, n: 1.5}
      - {email: b@example.com, phone: '+4915112345679', sku: 1_000, code: 0o17, n: -3}
      - {email: c@example.com, phone: 4915112345670, sku: 5, code: 7, n: 1e3}""",
        ),
    )
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            phone: phone
            sku: sku
            code: code
            n: n
        """,
    )
    warnings = [str(w) for w in load_manifests(Path("m")).warnings]
    advice = "quote it, or give the field type: string, to send the text as written"
    assert warnings == [
        "m/all.yaml:14:39: audience 'churn': phone: a number written with a plus sign is "
        f"read as the number without it, and field 'phone' (no type) sends that number; {advice}",
        "m/all.yaml:14:60: audience 'churn': sku: a number written with an underscore "
        "(12_34) is read as the number without it (1234), and field 'sku' (no type) sends "
        f"that number; {advice} (and 1 more member written so)",
        "m/all.yaml:14:73: audience 'churn': code: a number written in hexadecimal or octal "
        "(0x1F, 0o17) is read as its value (31, 15), and field 'code' (no type) sends that "
        f"number; {advice} (and 1 more member written so)",
    ]


def test_infinity_with_a_plus_sign_is_not_said_to_lose_its_plus() -> None:
    """`score: +.inf` keeps its text for messages (as `+4915112345678` does); it is no
    number written with a plus sign that a field sends without it, and is not warned of
    as one (it is refused where it is sent: no finite number)."""
    write(
        "m/all.yaml",
        BASE.replace(
            "members: {csv: data/churn.csv, userId: user_id}",
            """members:
    inline:
      - {email: a@example.com, score: +.inf}""",
        ),
    )
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            score: score
        """,
    )
    assert [str(w) for w in load_manifests(Path("m")).warnings] == []


def test_a_leading_zero_in_a_yaml_1_1_file_is_said_to_read_as_octal() -> None:
    """In a file that starts with `%YAML 1.1`, `zip: 01234` is the octal number 668, which
    a field with no type sends; the warning said it was read as "the number without" its
    zero (1234), so a user who checked Iterable for 1234 found 668."""
    write(
        "m/all.yaml",
        "%YAML 1.1\n---\n"
        + BASE.replace(
            "members: {csv: data/churn.csv, userId: user_id}",
            """members:
    inline:
      - {email: a@example.com, zip: 01234, code: 0129}""",
        ),
    )
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            zip: {from: zip}
            code: {from: code}
        """,
    )
    warnings = [str(w) for w in load_manifests(Path("m")).warnings]
    assert warnings == [
        "m/all.yaml:16:37: audience 'churn': zip: a number written with a leading zero is "
        "read as an octal number in this file's YAML 1.1 (01234 is 668), and field 'zip' "
        "(no type) sends that number; quote it, or give the field type: string, to send "
        "the digits as written",
    ]


def test_a_template_written_bare_says_to_quote_it() -> None:
    """`template: {{ first_name }}` is a YAML mapping (`{` opens one), and `{{ first_name }}
    there` a syntax error: the messages said "expected a string; got a mapping" and "check
    this line's indentation", neither pointing at the missing quotes."""
    csv("a@example.com,u1,pro,10,ada")
    write("m/all.yaml", BASE)
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            greeting: {from: plan}
            name:
              template: {{ first_name }}
        """,
    )
    assert problems() == [
        "m/traits.yaml:8:7: spec.fields.name.template: expected a string; got a mapping "
        "(YAML reads {{ ... }} written bare as a mapping: put the template in quotes)"
    ]
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            greeting: {from: plan}
            name: {{ first_name }}
        """,
    )
    assert problems() == [
        "m/traits.yaml:7:12: unknown key a mapping in spec.fields.name (YAML reads {{ ... }} "
        "written bare as a mapping: put the template in quotes); allowed: from, template, type, "
        "maxChangePercent"
    ]
    write(
        "m/traits.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields:
            greeting: {from: plan}
            name:
              template: {{ first_name }} there
        """,
    )
    problem = next(p for p in problems() if p.startswith("m/traits.yaml"))
    assert problem.startswith("m/traits.yaml:8:34: invalid YAML: "), problem
    assert problem.endswith(
        "; a value that starts with { is a YAML mapping: put a template ({{ ... }}) in quotes"
    ), problem


def test_a_phone_number_is_sent_only_as_e164_text_and_a_type_making_it_none_is_named(
    tmp_path: Path,
) -> None:
    # Iterable saves phoneNumber only as E.164 text (+16503926753). `type: number` made
    # '+16503926753' the number 16503926753, which the row's message quoted without a word
    # of the type that made it so; a template can write a local number in E.164.
    write("m/all.yaml", BASE)
    write(
        "m/traits.yaml",
        MAPPING.replace("planTier: plan", "phoneNumber: {from: plan, type: number}"),
    )
    csv("a@example.com,u-1,+16503926753,10,ada")
    desired = build_desired(load_manifests(Path("m")))
    (item,) = desired["prod"].lists
    assert item.fields is not None
    assert [str(i) for i in item.fields.issues] == [
        "m/data/churn.csv:2: field 'phoneNumber' (column 'plan'): '16503926753' is not a "
        "phone number as Iterable stores one (E.164: a +, the country code and the number's "
        "digits, +16503926753), and Iterable would not save it; write it so in the source, "
        "or with a template (its type: number makes it no text; leave the type out); the "
        "field is not written for this member"
    ]
    write(
        "m/traits.yaml",
        MAPPING.replace(
            "planTier: plan", "phoneNumber: {template: \"+1{{ plan | replace('-', '') }}\"}"
        ),
    )
    csv("a@example.com,u-1,650-392-6753,10,ada")
    desired = build_desired(load_manifests(Path("m")))
    (item,) = desired["prod"].lists
    assert item.fields is not None
    assert item.fields.issues == []
    assert item.fields.values["u-1"]["phoneNumber"] == "+16503926753"
