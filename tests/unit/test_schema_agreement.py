"""The published JSON Schema and the loader agree on which manifests are valid.

An editor checks a manifest against schema/reconciler.schema.json as it is typed; CI runs
`reconciler validate`. Every manifest one accepts and the other refuses is a bug a user
meets: red squiggles on a valid file, or a file the editor passed that fails only in CI.
So a corpus of documents, made by mutating one full document of each kind field by field,
goes through both, and they must agree, except for the checks a schema cannot express,
which are listed in DELIBERATE with the message the loader gives for each.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from reconciler.errors import ManifestError
from reconciler.layout import LAYOUT_BREAKING_CLASS, breaks_layout
from reconciler.manifest import load_manifests, manifest_json_schema

Document = dict[str, Any]

POLICY: dict[str, Any] = {
    "maxRemovalPercent": 10,
    "maxRemovals": 5,
    "activeCampaignAdds": "warn",
    "maxAdditionPercent": 50,
    "maxAdditions": 100,
}
DESTINATION: Document = {
    "apiVersion": "reconciler/v1",
    "kind": "Destination",
    "metadata": {"name": "prod", "labels": {"team": "crm"}, "annotations": {"owner": "ann"}},
    "spec": {
        "region": "us",
        "projectType": "hybrid",
        "apiKey": {"env": "ITERABLE_API_KEY"},
        "baseUrl": "http://127.0.0.1:8080",
        "policy": {**POLICY, "allowListDeletion": False},
        "prune": False,
    },
}
TRAIT_MAPPING: Document = {
    "apiVersion": "reconciler/v1",
    "kind": "TraitMapping",
    "metadata": {"name": "crm"},
    "spec": {
        "mergeNestedObjects": False,
        "fields": {
            "planTier": "plan",
            "ltv": {"from": "ltv", "type": "number"},
            "greeting": {"template": "Hi {{ plan }}"},
        },
    },
}
# What every audience below reads: a sandbox destination and the mapping above.
CONTEXT = [
    {
        "apiVersion": "reconciler/v1",
        "kind": "Destination",
        "metadata": {"name": "prod"},
        "spec": {"region": "sandbox", "projectType": "hybrid"},
    },
    TRAIT_MAPPING,
]
CSV_HEADER = "email,user_id,plan,ltv\n"


def audience(members: dict[str, Any]) -> Document:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Audience",
        "metadata": {"name": "churn-risk"},
        "spec": {
            "destination": "prod",
            "listName": "Churn risk",
            "description": "Flagged by the churn model",
            "members": members,
            "updateExistingUsersOnly": False,
            "unsubscribe": {"campaignId": 1234, "channelUnsubscribe": False},
            "policy": {**POLICY, "activeCampaignAdds": "block"},
            "traits": "crm",
            "minMembers": 1,
            "maxMembers": 100,
            "removals": "allowed",
            "allowEmpty": False,
            "resubscribe": "never",
        },
    }


# One full document of each kind, and of each member source kind.
BASES: dict[str, Document] = {
    "destination": DESTINATION,
    "trait-mapping": TRAIT_MAPPING,
    "csv": audience({"csv": "data/m.csv", "email": "email", "userId": "user_id"}),
    "inline": audience(
        {
            "inline": [
                "a@example.com",
                {"email": "b@example.com", "userId": "u-2", "plan": "gold", "ltv": 1},
                {"userId": "u-3", "plan": "free", "ltv": 2},
            ]
        }
    ),
    "sql-database": audience(
        {"sql": "SELECT email, plan, ltv FROM read_csv('data/m.csv')", "database": ":memory:"}
    ),
    "sql-url": audience(
        {"sql": "SELECT email, plan, ltv FROM m", "url": "postgresql://app:${PGPASSWORD}@/crm"}
    ),
}

# Values each field is set to in turn: every type, the bounds, the enums' words.
VALUES: list[Any] = [
    None,
    "",
    "x",
    "a b",
    "a\tb",
    "x" * 201,
    -1,
    10.0,
    1.5,
    100.5,
    2**63,
    True,
    ["a@example.com"],
    {"a": "b"},
    "eu",
    "email",
    "never",
    "HTTP://127.0.0.1:8080",
    "http://",
    # A credential pasted into a URL: before the host, in its query.
    "http://app:pw@127.0.0.1:8080/root",
    "http://127.0.0.1:8080/?api_key=k",
]
# Keys added to each mapping, with these values: two member sources at once, an option of
# another source, unknown keys.
ADDED_KEYS = ("bogus", "inline", "csv", "parquet", "sql", "database", "url", "email", "userId")
ADDED_VALUES: list[Any] = [None, "data/m.csv", ["a@example.com"], 1]

# The loader's checks no JSON Schema can make, by the message each gives; a disagreement
# is allowed only where the schema accepts and the loader refuses with one of these.
DELIBERATE = {
    # Names that refer to other documents: a schema sees one document at a time.
    "a destination that no document declares": r"unknown destination",
    "a trait mapping that no document declares": r"unknown trait mapping",
    "a column the member source does not have": r"is not in (the header of|the keys of)",
    # Comparisons between two fields' values.
    "minMembers above maxMembers": r"must not be greater than maxMembers",
    # Grammars checked in code: a SQLAlchemy URL's placeholders and password, jinja2's.
    "a database URL's grammar": (
        r"spec\.members\.url: (expected a SQLAlchemy URL|\$\{|a literal password)"
    ),
    "a template's syntax": r"template syntax error",
    # Unicode categories, which change with each Unicode version.
    "format characters in a file path": r"a file path cannot contain control or formatting",
}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        items: Iterator[tuple[Any, Any]] = iter(value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, inner in items:
        yield (*prefix, key)
        yield from paths(inner, (*prefix, key))


def at(document: Document, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def mutations(base: Document) -> Iterator[tuple[str, Document]]:
    for path in paths(base):
        for value in VALUES:
            changed = copy.deepcopy(base)
            at(changed, path[:-1])[path[-1]] = value
            yield f"{'.'.join(map(str, path))} = {value!r}", changed
        if isinstance(path[-1], str):
            changed = copy.deepcopy(base)
            del at(changed, path[:-1])[path[-1]]
            yield f"without {'.'.join(map(str, path))}", changed
        mapping = at(base, path)
        if isinstance(mapping, dict) and path[-1] != "fields":
            for key in ADDED_KEYS:
                for value in ADDED_VALUES if key not in mapping else []:
                    changed = copy.deepcopy(base)
                    at(changed, path)[key] = value
                    yield f"{'.'.join(map(str, path))} + {key}: {value!r}", changed


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    # Editors check `format` too (yaml-language-server: uri), so this does.
    return Draft202012Validator(manifest_json_schema(), format_checker=FormatChecker())


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    (root / ".git").mkdir()
    (root / "data").mkdir()
    (root / "data" / "m.csv").write_text(CSV_HEADER + "a@example.com,u-1,gold,3\n")
    return root


def loader_problems(
    repository: Path, documents: list[Document], context: list[Document]
) -> list[list[str]]:
    """What load_manifests says of each of `documents`, loaded at once beside `context`.

    Each document is one line of JSON (JSON is YAML), so a problem's line tells whose it
    is; a column check is located at the mapping and names the audience instead."""
    lines = [json.dumps(d) for d in [*documents, *context]]
    (repository / "m.yaml").write_text("\n---\n".join(lines), encoding="utf-8")
    found: list[list[str]] = [[] for _ in documents]
    try:
        load_manifests(repository)
    except ManifestError as error:
        names = {name: i for i, d in enumerate(documents) if isinstance(name := _name(d), str)}
        for problem in error.problems:
            index = (problem.line - 1) // 2
            named = re.search(r"source of audience '([^']+)'", problem.message)
            if named is not None and named[1] in names:
                index = names[named[1]]
            assert 0 <= index < len(documents), problem
            found[index].append(problem.message)
    return found


def _name(document: Document) -> Any:
    metadata = document.get("metadata")
    return metadata.get("name") if isinstance(metadata, dict) else None


def distinct(documents: list[Document]) -> list[Document]:
    """The documents with names of their own, so that loading them together makes no
    duplicate names or lists (a mutated name or list name is kept as it is)."""
    out = []
    for index, document in enumerate(documents):
        document = copy.deepcopy(document)
        metadata, spec = document.get("metadata"), document.get("spec")
        if isinstance(metadata, dict) and metadata.get("name") in ("prod", "crm", "churn-risk"):
            metadata["name"] = f"doc-{index}"
        if isinstance(spec, dict) and spec.get("listName") == "Churn risk":
            spec["listName"] = f"List {index}"
        out.append(document)
    return out


def schema_accepts(validator: Draft202012Validator, document: Any) -> bool:
    return not list(validator.iter_errors(document))


def disagreement(
    validator: Draft202012Validator, document: Document, problems: list[str]
) -> str | None:
    """How schema and loader disagree on `document`, or None when they agree or the loader's
    refusal is a DELIBERATE one."""
    accepted = schema_accepts(validator, document)
    if accepted == (not problems):
        return None
    if not accepted:
        return "the schema refuses it, the loader accepts it"
    unexplained = [p for p in problems if not any(re.search(why, p) for why in DELIBERATE.values())]
    if not unexplained:
        return None
    return f"the schema accepts it, the loader refuses it: {unexplained}"


@pytest.mark.parametrize("kind", sorted(BASES))
def test_every_mutation_of_a_full_document_is_judged_alike(
    validator: Draft202012Validator, repository: Path, kind: str
) -> None:
    base = BASES[kind]
    context = CONTEXT if base["kind"] == "Audience" else []
    assert loader_problems(repository, [base], context) == [[]]
    assert schema_accepts(validator, base)
    labels, documents = zip(*mutations(base), strict=True)
    documents = distinct(list(documents))
    found = {}
    for label, document, problems in zip(
        labels, documents, loader_problems(repository, documents, context), strict=True
    ):
        differs = disagreement(validator, document, problems)
        if differs is not None:
            found[label] = differs
    assert found == {}


SANDBOX: Document = {**DESTINATION, "spec": {"region": "sandbox", "projectType": "hybrid"}}


def changed(base: Document, dotted: str, value: Any) -> Document:
    document = copy.deepcopy(base)
    *parents, last = dotted.split(".")
    at(document, tuple(parents))[last] = value
    return document


# One manifest for each DELIBERATE difference: the schema passes it, validate refuses it.
DELIBERATE_EXAMPLES = {
    "a destination that no document declares": changed(BASES["csv"], "spec.destination", "x"),
    "a trait mapping that no document declares": changed(BASES["csv"], "spec.traits", "x"),
    "a column the member source does not have": changed(
        TRAIT_MAPPING, "spec.fields", {"planTier": "tier"}
    ),
    "minMembers above maxMembers": changed(BASES["csv"], "spec.minMembers", 101),
    "a database URL's grammar": changed(
        BASES["sql-url"], "spec.members.url", "postgresql://app:secret@/crm"
    ),
    "a template's syntax": changed(TRAIT_MAPPING, "spec.fields", {"greeting": {"template": "{{"}}),
    "format characters in a file path": changed(
        BASES["csv"], "spec.members.csv", "data/m\u200b.csv"
    ),
}


@pytest.mark.parametrize("why", sorted(DELIBERATE))
def test_each_deliberate_difference_is_one_the_schema_cannot_see(
    validator: Draft202012Validator, repository: Path, why: str
) -> None:
    document = DELIBERATE_EXAMPLES[why]
    # A mapping's columns are checked against the audience that uses it.
    context = CONTEXT if document["kind"] == "Audience" else [BASES["csv"], CONTEXT[0]]
    problems = loader_problems(repository, [document], context)[0]
    assert schema_accepts(validator, document)
    assert problems
    assert all(re.search(DELIBERATE[why], p) for p in problems), problems


def test_the_schema_names_the_characters_validate_refuses_in_a_name() -> None:
    # The character class in the schema is written out by hand; this is its check.
    refused = re.compile(f"[{LAYOUT_BREAKING_CLASS}]")
    for code in range(0x30000):
        assert bool(refused.match(chr(code))) == breaks_layout(chr(code)), hex(code)


# Manifests editor and validate once judged apart, each with what both must say now.
@pytest.mark.parametrize(
    ("document", "valid"),
    [
        # A baseUrl answers only with a key (plan stopped at it after validate said OK).
        pytest.param(
            changed(SANDBOX, "spec.baseUrl", "http://127.0.0.1:8080"),
            False,
            id="baseUrl without apiKey",
        ),
        pytest.param(SANDBOX, True, id="sandbox without apiKey"),
        pytest.param(
            changed(
                changed(SANDBOX, "spec.baseUrl", "http://127.0.0.1:8080"),
                "spec.apiKey",
                {"env": "RECONCILER_TEST_KEY"},
            ),
            True,
            id="baseUrl with apiKey",
        ),
        # JSON Schema's integers include 10.0, as an editor reads `maxRemovals: 10.0`.
        pytest.param(changed(BASES["csv"], "spec.minMembers", 10.0), True, id="10.0 members"),
        pytest.param(
            changed(BASES["csv"], "spec.unsubscribe.campaignId", 1e3), True, id="1e3 campaign"
        ),
        pytest.param(changed(DESTINATION, "spec.policy.maxRemovals", 5.0), True, id="5.0 removals"),
        pytest.param(changed(BASES["csv"], "spec.maxMembers", 1.5), False, id="1.5 members"),
        # Column names apply only to csv, parquet and sql members.
        pytest.param(
            changed(BASES["inline"], "spec.members.email", "mail"), False, id="inline + email"
        ),
        pytest.param(
            changed(BASES["inline"], "spec.members.userId", "id"), False, id="inline + userId"
        ),
        # A key pasted where the variable's name goes (a made-up one: 32 hex digits).
        pytest.param(
            changed(DESTINATION, "spec.apiKey.env", "abcdef0123456789abcdef0123456789"),
            False,
            id="a key as env",
        ),
        pytest.param(
            changed(DESTINATION, "spec.apiKey.env", "a1b2c3d4e5f6g7h8i9j0klmnopqr"),
            False,
            id="a long key as env",
        ),
        pytest.param(
            changed(DESTINATION, "spec.apiKey.env", "iterableKeyProduction2024"),
            True,
            id="a variable name with digits",
        ),
        # A baseUrl: http or https in any case, with a host, without spaces.
        pytest.param(
            changed(DESTINATION, "spec.baseUrl", "HTTPS://iterable-proxy.example"),
            True,
            id="baseUrl in capitals",
        ),
        pytest.param(changed(DESTINATION, "spec.baseUrl", "http://"), False, id="no host"),
        pytest.param(
            changed(DESTINATION, "spec.baseUrl", " http://127.0.0.1:8080"),
            False,
            id="a space before baseUrl",
        ),
        pytest.param(
            changed(DESTINATION, "spec.baseUrl", "http://127.0.0.1:80\n80"),
            False,
            id="a newline in baseUrl",
        ),
        # Names plans and CI logs print are one line, shown as written.
        pytest.param(changed(BASES["csv"], "spec.listName", "Churn\trisk"), False, id="tab"),
        pytest.param(
            changed(BASES["csv"], "spec.listName", "Churn risk\n"), False, id="listName: |"
        ),
        pytest.param(
            changed(BASES["csv"], "spec.listName", "Churn \u202erisk"), False, id="RTL override"
        ),
        pytest.param(
            changed(BASES["csv"], "spec.listName", "Churn \u200d\u00e9 risk"), True, id="joiner"
        ),
        pytest.param(changed(BASES["csv"], "spec.listName", "  "), False, id="blank listName"),
        pytest.param(changed(BASES["csv"], "spec.listName", " VIP "), True, id="spaced listName"),
        pytest.param(
            changed(TRAIT_MAPPING, "spec.fields", {"plan\nTier": "plan"}), False, id="field: a\\nb"
        ),
        pytest.param(
            changed(BASES["csv"], "spec.members.inline", ["a@example.com"]),
            False,
            id="csv with columns + inline",
        ),
        # A key written as null is not given.
        pytest.param(changed(BASES["csv"], "spec.members.sql", None), True, id="csv + sql: null"),
        pytest.param(
            changed(BASES["inline"], "spec.members.database", None),
            True,
            id="inline + database: null",
        ),
        pytest.param(
            changed(BASES["sql-url"], "spec.members.database", None),
            True,
            id="url + database: null",
        ),
        pytest.param(changed(BASES["csv"], "spec.members.url", "x"), False, id="csv + url"),
        pytest.param(
            changed(BASES["sql-url"], "spec.members.database", ":memory:"),
            False,
            id="url + database",
        ),
        pytest.param(changed(BASES["sql-url"], "spec.members.url", None), False, id="sql alone"),
    ],
)
def test_schema_and_loader_agree_on(
    validator: Draft202012Validator, repository: Path, document: Document, valid: bool
) -> None:
    context = CONTEXT if document["kind"] == "Audience" else []
    problems = loader_problems(repository, [document], context)[0]
    assert (not problems) == valid, problems
    assert schema_accepts(validator, document) == valid


def titles(schema: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every title in `schema` with where it is."""
    if isinstance(schema, dict):
        if isinstance(schema.get("title"), str):
            yield where, schema["title"]
        for key, inner in schema.items():
            yield from titles(inner, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, inner in enumerate(schema):
            yield from titles(inner, f"{where}/{index}")


def test_hover_titles_are_the_keys_a_manifest_has() -> None:
    # An editor shows a title on hover: it must be the key under the cursor, never a
    # Python name (`from_`, `ApiKeyRef`) that appears nowhere in a manifest.
    schema = manifest_json_schema()
    found = dict(titles(schema))
    assert found.pop("") == "reconciler manifest (reconciler/v1)"
    for where, title in found.items():
        assert where.endswith(f"/properties/{title}"), (where, title)
    assert found["/$defs/TraitFieldSpec/properties/from"] == "from"


def test_every_key_has_hover_text() -> None:
    # A key an editor shows no description for is one the user must look up elsewhere
    # (updateExistingUsersOnly had none). A key whose schema is a reference gets the
    # description of what it refers to.
    definitions = manifest_json_schema()["$defs"]
    missing = [
        f"{name}.{key}"
        for name, definition in definitions.items()
        for key, field in definition.get("properties", {}).items()
        if "description" not in field and "$ref" not in field
    ]
    assert missing == []
    assert all("description" in definition for definition in definitions.values())


def test_hover_text_says_when_a_key_is_needed_and_what_blocks_prune() -> None:
    definitions = manifest_json_schema()["$defs"]
    # `apiKey:` may be null, so the editor matches ApiKeyRef first and shows its
    # description, not the field's: it must say when a key is required.
    # (A docstring's line breaks stay in it; editors render them as markdown, as spaces.)
    assert "whenever baseUrl is set" in " ".join(definitions["ApiKeyRef"]["description"].split())
    prune = definitions["DestinationSpec"]["properties"]["prune"]["description"]
    assert "allowListDeletion" in prune
