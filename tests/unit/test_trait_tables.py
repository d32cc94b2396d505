"""Trait mappings' contract, run against both paths: audiences planned in Python (dicts
per member) and in DuckDB (workspace tables, a batch at a time) give the same plan, as
JSON and as data: the same subscribes' fields, field updates, conflicts, issues, reads
and fingerprint, and the same saved plan. Through `make_plan` as a user's plan runs,
against the emulator in-process; the engine threshold is set low to force the DuckDB
path."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from reconciler.emulator import Emulator, EmulatorTransport, Limits
from reconciler.errors import ReconcilerError
from reconciler.iterable import ClientSettings, IterableClient
from reconciler.manifest import load_manifests
from reconciler.members.model import Engine, EngineSettings, SavedPlanTables
from reconciler.plan import Plan
from reconciler.plan.file import load_plan, save_plan
from reconciler.planning import make_plan
from reconciler.render.masking import reveal

ENGINES = ("python", "duckdb")
KEY = "contract-key"

# crm: plan, a number, a date, a template; a bad number (a field issue), a duplicate key
# whose traits differ (a conflict naming the column), members new and already on the list.
CRM = [
    "email,userId,plan,ltv,renews,first",
    "a@x.com,u1,pro,10,2025-07-01,ann",
    "b@x.com,u2,free,2.5,,bob",
    "c@x.com,u3,pro,lots,2025-09-15,cat",
    "d@x.com,u4,gold,7,2025-01-01,dan",
    "A@x.com,u1,basic,10,2025-07-01,ann",
    "e@x.com,,free,0,,eve",
    "f@x.com,u6,pro,3,,fay",
]
# billing maps plan_tier too: it agrees about a (pro) and e (free), disagrees about b and
# d; it also maps credits (merging nested objects). Member g is only here.
BILLING = [
    "email,userId,plan,credits",
    "a@x.com,u1,pro,5",
    "b@x.com,u2,gold,1",
    "d@x.com,u4,silver,2",
    "e@x.com,,free,",
    "g@x.com,u7,pro,4",
]
# Iterable: a, b, c, d, f on the list with last week's values (a's date in Iterable's own
# form, equal), ltv a double field; g known without being on a list.
LIVE: list[tuple[str, str | None, dict[str, Any], bool]] = [
    (
        "a@x.com",
        "u1",
        {"plan_tier": "pro", "ltv": 10.0, "renews": "2025-07-01 00:00:00 +00:00"},
        True,
    ),
    ("b@x.com", "u2", {"plan_tier": "free", "ltv": 1.0, "greeting": "Hi Bob"}, True),
    ("c@x.com", "u3", {"plan_tier": "basic", "greeting": "Hi Cat"}, True),
    ("d@x.com", "u4", {"plan_tier": "gold", "ltv": 7.5, "credits": 2}, True),
    ("g@x.com", "u7", {"credits": 3}, False),
    ("f@x.com", "u6", {"plan_tier": "pro"}, True),
]


def _manifests(tmp: Path, project_type: str) -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    (tmp / "data" / "crm.csv").write_text("\n".join(CRM) + "\n", encoding="utf-8")
    (tmp / "data" / "billing.csv").write_text("\n".join(BILLING) + "\n", encoding="utf-8")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": project_type, "apiKey": {"env": "K"}},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": "crm"},
            "spec": {"destination": "d", "members": {"csv": "data/crm.csv"}, "traits": "crm"},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": "billing"},
            "spec": {
                "destination": "d",
                "members": {"csv": "data/billing.csv"},
                "traits": "billing",
            },
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "crm"},
            "spec": {
                "fields": {
                    "plan_tier": "plan",
                    "ltv": {"from": "ltv", "type": "number"},
                    "renews": {"from": "renews", "type": "date"},
                    "greeting": {"template": "Hi {{ first | title }}"},
                }
            },
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "billing"},
            "spec": {
                "fields": {
                    "plan_tier": "plan",
                    "credits": {"from": "credits", "type": "number"},
                },
                "mergeNestedObjects": True,
            },
        },
    ]
    (tmp / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    return tmp


def _emulator(project_type: str) -> Emulator:
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("d", project_type, KEY)
    crm = project.add_list("crm")
    for email, user_id, fields, on_list in LIVE:
        project.add_user(
            email=email, user_id=user_id, data_fields=fields, list_ids=[crm] if on_list else []
        )
    return emulator


def _engines(temp_dir: Path) -> dict[str, Engine]:
    return {
        e: Engine(
            EngineSettings(
                engine="auto",
                threshold=1 if e == "duckdb" else 10**9,
                traits_threshold=1 if e == "duckdb" else 10**9,
                temp_dir=temp_dir,
            )
        )
        for e in ENGINES
    }


@pytest.fixture
def engines(tmp_path) -> Iterator[dict[str, Engine]]:
    made = _engines(tmp_path)
    yield made
    for engine in made.values():
        engine.close()


def _client(emulator: Emulator, reads: str) -> IterableClient:
    # Per-user reads cost nothing when unpaced, so they are chosen for a few users; a slow
    # per-user budget makes the export the cheaper read.
    settings = (
        ClientSettings(list_reads_per_minute=0, user_reads_per_second=1000)
        if reads == "user_reads"
        else ClientSettings(list_reads_per_minute=0, user_reads_per_second=0.001)
    )
    return IterableClient(
        "https://sandbox.invalid", KEY, settings=settings, transport=EmulatorTransport(emulator)
    )


def _plan(root: Path, emulator: Emulator, engine: Engine, reads: str) -> Plan:
    return make_plan(load_manifests(root), {"d": _client(emulator, reads)}, engine=engine)


def _data(plan: Plan, root: Path) -> dict[str, Any]:
    """Everything a plan decides about fields, as plain data."""
    (dest,) = plan.destinations
    text = json.dumps(plan.to_dict(str)).replace(str(root), "ROOT")
    data = json.loads(text)
    # How members were read differs by engine by design ("diffed in DuckDB", timings).
    for d in data["destinations"]:
        d.pop("member_read")
    return {
        "json": data,
        "add_fields": {lp.list_name: dict(lp.add_fields) for lp in dest.lists},
        "update_keys": {lp.list_name: list(lp.field_update_keys) for lp in dest.lists},
        "updates": [
            (u.key, u.key_kind, u.email, u.user_id, u.changes, u.merge_nested_objects)
            for u in dest.field_updates
        ],
        "issues": [(a, i.where, i.message, i.value) for a, i in dest.field_issues],
        "read": dest.field_read,
        "fingerprint": plan.fingerprint,
    }


@pytest.mark.parametrize("reads", ["user_reads", "export"])
@pytest.mark.parametrize("project_type", ["email", "userId", "hybrid"])
def test_both_paths_plan_trait_mappings_alike(tmp_path, engines, project_type, reads):
    root = _manifests(tmp_path, project_type)
    emulator = _emulator(project_type)
    python = _plan(root, emulator, engines["python"], reads)
    duckdb = _plan(root, emulator, engines["duckdb"], reads)
    # The DuckDB path was taken: its subscribes' fields are a view of a workspace table.
    assert not isinstance(duckdb.destinations[0].lists[0].add_fields, dict)
    assert isinstance(python.destinations[0].lists[0].add_fields, dict)

    expected = _data(python, root)
    assert _data(duckdb, root) == expected
    # The case is not empty: fields ride on subscribes, users are updated, two audiences
    # disagree, a value could not be made, a double field gets floats, a read was made.
    assert expected["read"].method == reads
    updates = {key: changes for key, _k, _e, _u, changes, _m in expected["updates"]}
    assert any(changes.get("ltv") == (7.5, 7.0) for changes in updates.values())
    assert all(isinstance(c["ltv"][1], float) for c in updates.values() if "ltv" in c)
    messages = [m for _a, _w, m, _v in expected["issues"]]
    assert sum("from one and" in m for m in messages) == 2
    assert any("field 'ltv'" in m and "lots" in m for m in messages)
    assert any(expected["add_fields"].values())
    conflicts = expected["json"]["destinations"][0]["duplicate_conflicts"]
    assert any("different values in" in c["reason"] for c in conflicts)
    _assert_counts_add_up(python)
    _assert_counts_add_up(duckdb)


def _assert_counts_add_up(plan: Plan) -> None:
    """Each list reads +added / -removed / ~updated / unchanged: its desired members are
    each one of added, updated, unchanged or left out (consent, forgotten, not created),
    so unchanged is never negative; and no user is sent a field twice, by a subscribe's
    dataFields and a bulkUpdate both."""
    for dest in plan.destinations:
        changed = {u.key: set(u.changes) for u in dest.field_updates}
        for lp in dest.lists:
            adds = {m.key for m in lp.add}
            updated = set(lp.field_update_keys)
            left_out = {*lp.left_themselves, *lp.channel_unsubscribed, *lp.forgotten}
            left_out |= set(lp.not_created)
            where = f"{dest.destination}/{lp.list_name}"
            assert lp.unchanged >= 0, where
            assert not adds & updated, where
            assert len(adds) + len(updated) + lp.unchanged + len(left_out) == lp.desired_count, (
                where
            )
            for key, fields in lp.add_fields.items():
                assert not fields.keys() & changed.get(key, set()), (where, key)


def test_a_new_lists_adds_already_on_another_list_are_added_not_updated(tmp_path, engines):
    """billing is a new list of 5: e and g are new to the project's lists, u1, u2 and u4
    are on crm, whose fields change for them. billing is +5 / ~0 / 0 unchanged (it said ~3
    and -3 unchanged, its adds counted as its updates too); crm's fields for those three
    still go by bulkUpdate, with none of the fields billing's subscribe carries."""
    root = _manifests(tmp_path, "hybrid")
    emulator = _emulator("hybrid")
    for name in ENGINES:
        plan = _plan(root, emulator, engines[name], "export")
        (dest,) = plan.destinations
        lists = {lp.list_name: lp for lp in dest.lists}
        billing, crm = lists["billing"], lists["crm"]
        assert (len(billing.add), len(billing.field_update_keys), billing.unchanged) == (5, 0, 0)
        assert (len(crm.add), len(crm.field_update_keys), crm.unchanged) == (1, 5, 0)
        summary = {
            lp["list_name"]: (lp["users_to_update"], lp["unchanged_members"])
            for lp in plan.to_dict(str)["destinations"][0]["lists"]
        }
        assert summary == {"billing": (0, 0), "crm": (5, 0)}, name
        updates = {u.key: set(u.changes) for u in dest.field_updates}
        assert {"u1", "u2", "u4"} <= updates.keys() & set(billing.add_fields)
        assert updates["u4"] == {"greeting", "ltv", "renews"}
        _assert_counts_add_up(plan)


# Random destinations of three mapped audiences over ten people: which lists exist, who is
# on them, who the sources list, their values (fields shared between mappings, so they
# agree or disagree), and who left a list themselves (held back by consent).
# prefs, an object, is merged by one and replaced by two (equal objects conflict there).
PREFS = {"from": "prefs", "type": "object"}
RANDOM_MAPPINGS: dict[str, dict[str, Any]] = {
    "one": {"tier": "plan", "score": {"from": "score", "type": "number"}, "prefs": PREFS},
    "two": {"tier": "plan", "note": "note", "prefs": PREFS},
    "three": {"score": {"from": "score", "type": "number"}, "note": "note"},
}
RANDOM_PREFS = ['"{""a"": 1}"', '"{""a"": 1}"', '"{""b"": ""x""}"', ""]


def _random_case(tmp: Path, rng: random.Random) -> tuple[Path, Emulator, str]:
    project_type = rng.choice(["email", "userId", "hybrid"])
    people = [(f"p{i}@x.com", f"u{i}") for i in range(10)]
    (tmp / "data").mkdir(parents=True)
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": project_type, "apiKey": {"env": "K"}},
        }
    ]
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("d", project_type, KEY)
    on_lists: dict[int, list[int]] = {i: [] for i in range(len(people))}
    left: list[tuple[int, int]] = []
    for name, fields in RANDOM_MAPPINGS.items():
        chosen = rng.sample(range(len(people)), rng.randint(1, 8))
        rows = ["email,userId,plan,score,note,prefs"]
        for i in chosen:
            plan, score = rng.choice(["pro", "free"]), rng.choice(["1", "2.5", ""])
            note, prefs = rng.choice("ab"), rng.choice(RANDOM_PREFS)
            rows.append(f"{people[i][0]},{people[i][1]},{plan},{score},{note},{prefs}")
        (tmp / "data" / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        source = {"csv": f"data/{name}.csv"}
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {"destination": "d", "members": source, "traits": name},
            }
        )
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": name},
                "spec": {"fields": fields, "mergeNestedObjects": name == "one"},
            }
        )
        if rng.random() < 0.7:  # the list exists, with some of these people and others
            list_id = project.add_list(name)
            for i in range(len(people)):
                if rng.random() < 0.5:
                    on_lists[i].append(list_id)
                    if i in chosen and rng.random() < 0.15:
                        left.append((i, list_id))
    for i, (email, user_id) in enumerate(people):
        if on_lists[i] or rng.random() < 0.3:
            values = {
                "tier": rng.choice(["pro", "free"]),
                "score": rng.choice([1.0, 2.5]),
                "prefs": rng.choice([{"a": 1, "z": 9}, {"a": 2}]),
            }
            values = {k: v for k, v in values.items() if rng.random() < 0.7}
            project.add_user(
                email=email,
                user_id=None if project_type == "email" else user_id,
                data_fields=values,
                list_ids=on_lists[i],
            )
    for i, list_id in left:
        user = project.find_user(email=people[i][0])
        project.self_unsubscribe(user, list_id=list_id)
    (tmp / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    return tmp, emulator, project_type


def test_both_paths_count_random_lists_alike_and_every_member_once(tmp_path, engines):
    """The differential contract over random cases: both paths make the same plan, and in
    each every list's desired members are added, updated, unchanged or left out, once."""
    modes = 0
    for seed in range(16):
        root, emulator, _project_type = _random_case(tmp_path / f"case{seed}", random.Random(seed))
        plans = {name: _plan(root, emulator, engines[name], "export") for name in ENGINES}
        expected = _data(plans["python"], root)
        assert _data(plans["duckdb"], root) == expected, seed
        for plan in plans.values():
            _assert_counts_add_up(plan)
        modes += sum(" from both, merged " in m for _a, _w, m, _v in expected["issues"])
    assert modes  # some cases had equal objects under different modes


def test_a_saved_plan_of_either_path_reads_back_alike(tmp_path, engines):
    root = _manifests(tmp_path, "hybrid")
    emulator = _emulator("hybrid")
    saved = {}
    for name in ENGINES:
        plan = _plan(root, emulator, engines[name], "export")
        path = tmp_path / f"{name}.plan"
        save_plan(path, plan, "digest", root, None)
        # Read back into a workspace (sets of one row or more go there) and into memory.
        with Engine(EngineSettings(threshold=1, temp_dir=tmp_path)) as reader:
            into_tables = load_plan(path, SavedPlanTables(reader)).plan
            saved[name] = _data(into_tables, root)
        assert _data(load_plan(path).plan, root) == saved[name]
    assert saved["python"] == saved["duckdb"]


def test_a_type_conflict_stops_both_paths_with_the_same_message(tmp_path, engines):
    root = _manifests(tmp_path, "email")
    # A new list: every member is an add. greeting is a number field in this project, so
    # the template's text cannot go there; the first value sent names the conflict.
    emulator = Emulator(limits=Limits.unlimited())
    emulator.add_project("d", "email", KEY).add_user(email="z@x.com", data_fields={"greeting": 5})
    messages = []
    for name in ENGINES:
        with pytest.raises(ReconcilerError) as raised:
            _plan(root, emulator, engines[name], "export")
        messages.append(str(raised.value).replace(str(root), "ROOT"))
    assert messages[0] == messages[1]
    assert "'greeting' is long in Iterable" in messages[0]
    assert "data/crm.csv:2" in messages[0]


# -- typed sources: Parquet files and DuckDB queries --------------------------------------

# Every type a Parquet file or a DuckDB query hands the conversions, NULLs among them, and
# values the conversions refuse (NaN, infinity, text for a number). Rows 6 and 8 repeat
# keys: row 6 with a different plan, row 8 with the same NaN score (NaN differs from
# itself in Python, so both paths call it a conflict).
TYPED_ROWS = """
    ('a@x.com', 1, 'pro', 2.5::DOUBLE, 3, true, DATE '2025-07-01',
     TIMESTAMP '2025-07-01 09:30:00.123456', TIMESTAMPTZ '2025-07-01 09:30:00+02',
     12.34::DECIMAL(10,2), ['red', 'blue'], {'tier': 'gold', 'since': DATE '2020-01-01'}, 'Ann'),
    ('b@x.com', 2, 'fréé ✓', 'nan'::DOUBLE, NULL, false, NULL, NULL, NULL,
     5.00::DECIMAL(10,2), [], NULL, 'bob'),
    ('c@x.com', NULL, NULL, 'inf'::DOUBLE, -4, NULL, DATE '1999-12-31',
     TIMESTAMP '2000-01-01 00:00:00', TIMESTAMPTZ '2030-01-01 23:59:59-05',
     NULL, NULL, {'tier': NULL, 'since': NULL}, NULL),
    ('d@x.com', 4, '42', -0.0::DOUBLE, 0, true, DATE '2024-02-29',
     TIMESTAMP '2024-02-29 12:00:00', TIMESTAMPTZ '2024-02-29 12:00:00+00',
     -0.50::DECIMAL(10,2), ['x'], {'tier': 'silver', 'since': DATE '2024-02-29'}, 'dan'),
    ('e@x.com', 5, 'free', 1e300::DOUBLE, 2147483647, false, DATE '2025-01-01',
     TIMESTAMP '2025-01-01 00:00:00', TIMESTAMPTZ '2025-01-01 00:00:00+00',
     99999999.99::DECIMAL(10,2), ['y', NULL], {'tier': 'x', 'since': NULL}, 'Émile'),
    ('A@x.com', 1, 'basic', 2.5::DOUBLE, 3, true, DATE '2025-07-01',
     TIMESTAMP '2025-07-01 09:30:00.123456', TIMESTAMPTZ '2025-07-01 09:30:00+02',
     12.34::DECIMAL(10,2), ['red', 'blue'], {'tier': 'gold', 'since': DATE '2020-01-01'}, 'Ann'),
    ('f@x.com', 6, 'pro', 'nan'::DOUBLE, 1, true, NULL, NULL, NULL, NULL, NULL, NULL, 'fay'),
    ('f@x.com', 6, 'pro', 'nan'::DOUBLE, 1, true, NULL, NULL, NULL, NULL, NULL, NULL, 'fay')
"""
TYPED_COLUMNS = (
    "email, userId, plan, score, visits, vip, joined, seen, seen_tz, balance, tags, profile, first"
)
TYPED_FIELDS: dict[str, Any] = {
    "plan_tier": "plan",
    "plan_number": {"from": "plan", "type": "number"},
    "score": {"from": "score", "type": "number"},
    "score_raw": "score",
    "visits": {"from": "visits", "type": "number"},
    "vip": {"from": "vip", "type": "boolean"},
    "vip_text": {"from": "vip", "type": "string"},
    "joined": {"from": "joined", "type": "date"},
    "seen": "seen",
    "seen_tz": {"from": "seen_tz", "type": "date"},
    "balance": {"from": "balance", "type": "number"},
    "balance_raw": "balance",
    "tags": {"from": "tags", "type": "list"},
    "profile": {"from": "profile", "type": "object"},
    "profile_raw": "profile",
    "greeting": {
        "template": "Hi {{ first | title }}: {{ plan }} {{ balance }} {{ vip }} {{ joined }} "
        "{{ seen_tz }} {{ tags }} {{ score }}"
    },
}
# Columns only a DuckDB query can give (a Parquet file cannot hold them); they cross the
# DuckDB path's transfer file as text.
QUERY_EXTRA = (
    ", 170141183460469231731687303715884105727::HUGEINT AS big, "
    "[1::UHUGEINT, NULL] AS bigs, TIMETZ '01:02:03+05' AS at_time, 'k'::ENUM('j', 'k') AS e, "
    "[1, 2, 3]::INTEGER[3] AS fixed"
)


def _typed_manifests(tmp: Path, kind: str, project_type: str) -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    values = f"SELECT * FROM (VALUES {TYPED_ROWS}) AS t({TYPED_COLUMNS})"
    parquet = tmp / "data" / "members.parquet"
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute(f"COPY ({values}) TO '{parquet}' (FORMAT parquet)")
    fields = dict(TYPED_FIELDS)
    if kind == "parquet":
        members: dict[str, Any] = {"parquet": "data/members.parquet"}
    else:
        # Ordered: of a query's rows that disagree, only an ordered query's first is used.
        query = f"SELECT *{QUERY_EXTRA} FROM ({values}) ORDER BY email"
        members = {"sql": query, "database": ":memory:"}
        fields.update(
            big="big",
            bigs="bigs",
            e="e",
            big_text={"template": "{{ big }} {{ bigs }} {{ at_time }} {{ fixed }}"},
        )
    return _one_audience(tmp, members, fields, project_type)


def _one_audience(
    tmp: Path, members: dict[str, Any], fields: dict[str, Any], project_type: str
) -> Path:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": project_type, "apiKey": {"env": "K"}},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": "crm"},
            "spec": {"destination": "d", "members": members, "traits": "typed"},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "typed"},
            "spec": {"fields": fields},
        },
    ]
    (tmp / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    return tmp


@pytest.mark.parametrize("kind", ["parquet", "duckdb query"])
@pytest.mark.parametrize("project_type", ["email", "userId", "hybrid"])
def test_typed_sources_plan_trait_mappings_alike(tmp_path, engines, kind, project_type):
    root = _typed_manifests(tmp_path, kind, project_type)
    emulator = _emulator(project_type)
    python = _plan(root, emulator, engines["python"], "export")
    duckdb_plan = _plan(root, emulator, engines["duckdb"], "export")
    assert not isinstance(duckdb_plan.destinations[0].lists[0].add_fields, dict)
    assert isinstance(python.destinations[0].lists[0].add_fields, dict)

    expected = _data(python, root)
    assert _data(duckdb_plan, root) == expected
    # The case is not empty: values of every type were made or refused, rows conflict.
    messages = [m for _a, _w, m, _v in expected["issues"]]
    assert any("field 'score'" in m and "finite" in m for m in messages)
    assert any("field 'plan_number'" in m for m in messages)
    made = {f for fields in expected["add_fields"].values() for v in fields.values() for f in v}
    made |= {f for *_, changes, _m in expected["updates"] for f in changes}
    assert {"joined", "seen_tz", "balance", "tags", "profile", "greeting", "vip"} <= made
    if kind == "duckdb query":
        assert {"bigs", "e", "big_text"} <= made
        # A HUGEINT past 64 bits is no whole number Iterable can store: refused alike.
        assert "big" not in made
        assert any("field 'big'" in m and "64 bits" in m for m in messages)
    conflicts = expected["json"]["destinations"][0]["duplicate_conflicts"]
    assert any("different values in" in c["reason"] for c in conflicts)


# -- value issues are capped per audience and field ----------------------------------------


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_value_issues_are_capped_alike_on_both_paths(tmp_path, engines, monkeypatch, kind):
    """A mistyped `type:` fails every row: each field lists its first MAX_FIELD_ISSUES
    values not made and counts the rest, the same on both paths, in every output."""
    from reconciler.render.plans import plan_json, plan_markdown, plan_text
    from reconciler.traits import values

    cap = 4
    monkeypatch.setattr(values, "MAX_FIELD_ISSUES", cap)
    rows = 25  # every row fails `wrong`; every third fails `ltv`
    (tmp_path / "data").mkdir()
    lines = ["email,plan,ltv"] + [
        f"m{n}@x.com,tier{n},{'many' if n % 3 == 0 else n}" for n in range(rows)
    ]
    (tmp_path / "data" / "m.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    members: dict[str, str] = {"csv": "data/m.csv"}
    if kind == "parquet":
        with duckdb.connect() as connection:
            connection.execute(
                f"COPY (SELECT * FROM read_csv('{tmp_path}/data/m.csv', all_varchar = true)) "
                f"TO '{tmp_path}/data/m.parquet' (FORMAT parquet)"
            )
        members = {"parquet": "data/m.parquet"}
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": "email", "apiKey": {"env": "K"}},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": "crm"},
            "spec": {"destination": "d", "members": members, "traits": "t"},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "t"},
            "spec": {
                "fields": {
                    "wrong": {"from": "plan", "type": "number"},
                    "ltv": {"from": "ltv", "type": "number"},
                    "plan_tier": "plan",
                }
            },
        },
    ]
    (tmp_path / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    emulator = _emulator("email")
    outputs = []
    for name in ENGINES:
        plan = _plan(tmp_path, emulator, engines[name], "export")
        (dest,) = plan.destinations
        failing_ltv = len(range(0, rows, 3))
        # Listed: the first `cap` of each field, in row order; counted: the rest, exactly.
        listed = [i.message.split(" ")[1] for _a, i in dest.field_issues]
        assert listed.count("'wrong'") == cap and listed.count("'ltv'") == cap
        # Rows are named by line in a CSV file (after its header), by number in Parquet.
        first_row = {"csv": 2, "parquet": 1}[kind]
        ltv_at = [i.where.rsplit(":", 1)[1] for _a, i in dest.field_issues if "'ltv'" in i.message]
        assert [int(w.removeprefix("row ")) for w in ltv_at] == [
            n + first_row for n in range(0, 3 * cap, 3)
        ]
        assert dest.field_issues_unlisted == rows + failing_ltv - 2 * cap
        assert plan.summary.field_values_skipped == rows + failing_ltv
        text = plan_text(plan).replace(str(tmp_path), "ROOT")
        assert f"{rows + failing_ltv:,} field values not sent" in text
        data = json.loads(plan_json(plan))
        assert data["destinations"][0]["field_issues_unlisted"] == dest.field_issues_unlisted
        # A saved plan keeps the count.
        path = tmp_path / f"{name}.plan"
        save_plan(path, plan, "digest", tmp_path, None)
        assert load_plan(path).plan.destinations[0].field_issues_unlisted == (
            dest.field_issues_unlisted
        )
        # How members were read differs by engine by design (as _data leaves it out).
        read = dest.member_read
        assert read
        markdown = plan_markdown(plan).replace(str(tmp_path), "ROOT").replace(read, "READ")
        outputs.append((text.replace(read, "READ"), markdown, _data(plan, tmp_path)))
    assert outputs[0] == outputs[1]
    # Listed fewer than the sample: "more" counts those not listed.
    assert f"... and {rows + failing_ltv - 2 * cap:,} more" in outputs[0][0]


# -- warehouse sources (a query at a SQLAlchemy URL) ---------------------------------------

# What a warehouse's driver hands back beyond text and numbers: PostgreSQL's types as
# psycopg gives them (NaN and infinity, numerics, time zones, arrays, JSON, intervals,
# UUIDs, bytes), NULLs among them; a repeated key with other values and one with NaN.
POSTGRES_TABLE = """
    CREATE TABLE people (
        email TEXT, user_id BIGINT, plan TEXT, score DOUBLE PRECISION, visits BIGINT,
        vip BOOLEAN, joined DATE, seen TIMESTAMP, seen_tz TIMESTAMPTZ, balance NUMERIC(10, 2),
        tags TEXT[], profile JSONB, first TEXT, waited INTERVAL, uid UUID, raw BYTEA,
        amounts NUMERIC[], days DATE[]
    )
"""
POSTGRES_ROWS = """
    INSERT INTO people VALUES
    ('a@x.com', 1, 'pro', 2.5, 3, true, '2025-07-01', '2025-07-01 09:30:00.123456',
     '2025-07-01 09:30:00+02', 12.34, ARRAY['red', 'blue'], '{"tier": "gold", "n": [1, 2.5]}',
     'Ann', '3 days', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\xdeadbeef', ARRAY[1.50, 2],
     ARRAY[DATE '2020-01-01']),
    ('b@x.com', 2, 'fréé ✓', 'NaN', NULL, false, NULL, NULL, NULL, 5.00, ARRAY[]::TEXT[],
     'null', 'bob', NULL, NULL, NULL, NULL, NULL),
    ('c@x.com', NULL, NULL, 'Infinity', -4, NULL, '1999-12-31', '2000-01-01 00:00:00',
     '2030-01-01 23:59:59-05', NULL, NULL, '[1, "x", null]', NULL, '1 hour', NULL, NULL,
     ARRAY[0.1], NULL),
    ('d@x.com', 4, '42', -0.0, 0, true, '2024-02-29', '2024-02-29 12:00:00',
     '2024-02-29 12:00:00+00', -0.50, ARRAY['x', NULL], '{"b": 1, "a": {"c": true}}', 'dan',
     '-2 minutes', NULL, '\\x', NULL, ARRAY[DATE '2024-02-29', NULL]),
    ('A@x.com', 1, 'basic', 2.5, 3, true, '2025-07-01', '2025-07-01 09:30:00.123456',
     '2025-07-01 09:30:00+02', 12.34, ARRAY['red', 'blue'], '{"tier": "gold", "n": [1, 2.5]}',
     'Ann', '3 days', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\xdeadbeef', ARRAY[1.50, 2],
     ARRAY[DATE '2020-01-01']),
    ('f@x.com', 6, 'pro', 'NaN', 1, true, NULL, NULL, NULL, NULL, NULL, NULL, 'fay', NULL,
     NULL, NULL, NULL, NULL),
    ('f@x.com', 6, 'pro', 'NaN', 1, true, NULL, NULL, NULL, NULL, NULL, NULL, 'fay', NULL,
     NULL, NULL, NULL, NULL)
"""
POSTGRES_FIELDS: dict[str, Any] = {
    **{k: v for k, v in TYPED_FIELDS.items() if k != "profile_raw"},  # JSON of any shape
    "profile": {"from": "profile", "type": "object"},
    "waited": "waited",
    "uid": {"from": "uid", "type": "string"},
    "raw": "raw",
    "amounts": "amounts",
    "amounts_list": {"from": "amounts", "type": "list"},
    "days": "days",
    "described": {"template": "{{ waited }} {{ uid }} {{ raw }} {{ amounts }} {{ days }}"},
}


def _assert_alike(root: Path, engines: dict[str, Engine], project_type: str) -> dict[str, Any]:
    emulator = _emulator(project_type)
    python = _plan(root, emulator, engines["python"], "export")
    duckdb_plan = _plan(root, emulator, engines["duckdb"], "export")
    assert not isinstance(duckdb_plan.destinations[0].lists[0].add_fields, dict)
    assert isinstance(python.destinations[0].lists[0].add_fields, dict)
    expected = _data(python, root)
    assert _data(duckdb_plan, root) == expected
    return expected


@pytest.mark.parametrize("project_type", ["email", "userId", "hybrid"])
def test_postgres_audiences_plan_trait_mappings_alike(
    tmp_path, engines, postgres, monkeypatch, project_type
):
    postgres.execute(POSTGRES_TABLE)
    postgres.execute(POSTGRES_ROWS)
    monkeypatch.setenv("RECONCILER_TEST_PG_PASSWORD", postgres.password)
    members = {
        "sql": f'SELECT email, user_id AS "userId", plan, score, visits, vip, joined, seen, '
        f"seen_tz, balance, tags, profile, first, waited, uid, raw, amounts, days "
        f"FROM {postgres.schema}.people ORDER BY email",
        "url": postgres.url_template("RECONCILER_TEST_PG_PASSWORD"),
    }
    root = _one_audience(tmp_path, members, POSTGRES_FIELDS, project_type)
    expected = _assert_alike(root, engines, project_type)
    messages = [m for _a, _w, m, _v in expected["issues"]]
    assert any("field 'score'" in m and "finite" in m for m in messages)
    assert any("field 'waited'" in m for m in messages)  # an interval Iterable cannot store
    made = {f for fields in expected["add_fields"].values() for v in fields.values() for f in v}
    made |= {f for *_, changes, _m in expected["updates"] for f in changes}
    assert {"joined", "seen_tz", "balance", "tags", "profile", "uid", "described"} <= made
    # A numeric[] is a list of numbers, untyped or `type: list` (its Decimals were refused).
    assert {"amounts", "amounts_list"} <= made
    assert not any("Decimal" in m for m in messages)
    conflicts = expected["json"]["destinations"][0]["duplicate_conflicts"]
    assert sum("different values in" in c["reason"] for c in conflicts) == 2


def test_sqlite_audiences_plan_trait_mappings_alike(tmp_path, engines, monkeypatch):
    import sqlite3

    monkeypatch.chdir(tmp_path)
    with sqlite3.connect(tmp_path / "crm.db") as connection:
        connection.execute("CREATE TABLE people (email TEXT, plan, ltv REAL, raw BLOB, n INT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?, ?)",
            [
                ("a@x.com", "pro", 2.5, b"\x00\xff", 1),
                ("b@x.com", 7, None, None, 2**62),
                ("c@x.com", "lots", 1e308, b"", None),
                ("a@x.com", "gold", 2.5, b"\x00\xff", 1),
            ],
        )
    fields = {
        "plan_any": {"from": "plan", "type": "string"},
        "ltv": {"from": "plan", "type": "number"},
        "raw": "raw",
        "n": {"from": "n", "type": "number"},
        "greeting": {"template": "{{ plan }} {{ raw }} {{ ltv }} {{ n }}"},
    }
    members = {"sql": "SELECT * FROM people ORDER BY rowid", "url": "sqlite:///crm.db"}
    expected = _assert_alike(_one_audience(tmp_path, members, fields, "email"), engines, "email")
    assert any("field 'raw'" in m for _a, _w, m, _v in expected["issues"])
    assert expected["json"]["destinations"][0]["duplicate_conflicts"]


def test_disagreements_between_audiences_are_capped_alike(tmp_path, engines, monkeypatch):
    """Two audiences that disagree about every member: the first MAX_FIELD_ISSUES members
    per pair and field are listed, the rest counted, the same on both paths."""
    from reconciler.render.plans import plan_json, plan_text
    from reconciler.traits import values

    cap, rows = 4, 25
    monkeypatch.setattr(values, "MAX_FIELD_ISSUES", cap)
    (tmp_path / "data").mkdir()
    for name, tier in (("a", "gold"), ("b", "silver")):
        lines = ["email,tier,n"] + [f"m{n}@x.com,{tier},{n}" for n in range(rows)]
        (tmp_path / "data" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": "email", "apiKey": {"env": "K"}},
        },
        *(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {"destination": "d", "members": {"csv": f"data/{name}.csv"}, "traits": "t"},
            }
            for name in ("a", "b")
        ),
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "t"},
            "spec": {"fields": {"tier_name": "tier", "n": {"from": "n", "type": "number"}}},
        },
    ]
    (tmp_path / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    emulator = _emulator("email")
    outputs = []
    for name in ENGINES:
        plan = _plan(tmp_path, emulator, engines[name], "export")
        (dest,) = plan.destinations
        assert [i.message.split(" gets ")[0] for _a, i in dest.field_issues] == [
            "field 'tier_name'"
        ] * cap
        assert dest.field_issues_unlisted == rows - cap
        assert plan.summary.field_values_skipped == rows
        text = plan_text(plan)
        if dest.member_read:  # how members were read differs by engine by design
            text = text.replace(dest.member_read, "READ")
        assert f"... and {rows - cap:,} more" in text
        outputs.append((text, json.loads(plan_json(plan))["summary"], _data(plan, tmp_path)))
    assert outputs[0] == outputs[1]


def test_equal_objects_under_different_merge_modes_conflict_alike(tmp_path, engines):
    """keep merges nested objects, wipe replaces them, and both give prefs {a: 1}: for a
    member new to both lists (n), on both (o), or written once as {"a":1.0} (f, another
    text of an equal value), the field is a conflict on both paths and sent by neither
    subscribe nor update; a list of tags or a number is written alike in both modes and
    is no conflict, nor is an object only one list gives (s)."""
    (tmp_path / "data").mkdir()
    rows = {
        "keep": ["n@x.com", "o@x.com", "f@x.com"],
        "wipe": ["n@x.com", "o@x.com", "f@x.com", "s@x.com"],
    }
    for name, emails in rows.items():
        lines = ["email,prefs,tags,n"]
        for email in emails:
            prefs = '"{""a"": 1.0}"' if email == "f@x.com" and name == "wipe" else '"{""a"": 1}"'
            lines.append(f'{email},{prefs},"[""x""]",3')
        (tmp_path / "data" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": "email", "apiKey": {"env": "K"}},
        },
    ]
    for name in rows:
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {
                    "destination": "d",
                    "members": {"csv": f"data/{name}.csv"},
                    "traits": name,
                },
            }
        )
        fields = {
            "prefs": {"from": "prefs", "type": "object"},
            "tags": {"from": "tags", "type": "list"},
            "n": {"from": "n", "type": "number"},
        }
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": name},
                "spec": {"fields": fields, "mergeNestedObjects": name == "keep"},
            }
        )
    (tmp_path / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("d", "email", KEY)
    lists = [project.add_list(name) for name in rows]
    for email in ("o@x.com", "f@x.com"):
        project.add_user(email=email, data_fields={"prefs": {"z": 9}}, list_ids=lists)
    datas = []
    for name in ENGINES:
        plan = _plan(tmp_path, emulator, engines[name], "export")
        (dest,) = plan.destinations
        assert [(a, i.where, i.value) for a, i in dest.field_issues] == [
            ("wipe", "audiences 'keep' and 'wipe'", key)
            for key in ("n@x.com", "o@x.com", "f@x.com")
        ], name
        assert all(" from both, merged " in i.message for _a, i in dest.field_issues)
        assert plan.summary.field_values_skipped == 3
        sent = {lp.list_name: dict(lp.add_fields) for lp in dest.lists}
        assert sent["keep"] == {"n@x.com": {"tags": ["x"], "n": 3}}, name
        assert sent["wipe"]["n@x.com"] == {"tags": ["x"], "n": 3}, name
        assert sent["wipe"]["s@x.com"]["prefs"] == {"a": 1}, name
        assert all("prefs" not in u.changes for u in dest.field_updates), name
        datas.append(_data(plan, tmp_path))
    assert datas[0] == datas[1]


def test_warehouse_values_cross_the_transfer_file_exactly():
    """encode_trait's text decodes to a value equal in type and content; a value that
    cannot be kept stops with NotEncodable (the reader names the query)."""
    import datetime
    import decimal
    import math
    import uuid

    from reconciler.members.engine.desired_table import NotEncodable, decode_trait, encode_trait

    values = [
        None,
        "",
        "pXXXX",  # text that looks like a tag stays text
        'ünï ✓\n"q"',
        0,
        -(2**70),
        1.5,
        -0.0,
        math.inf,
        True,
        [1, "a", None, [2.5]],
        {"a": {"b": [True]}},
        (1, 2),
        {1: "int key"},
        [decimal.Decimal("1.50")],
        {"at": datetime.datetime(2025, 1, 2, 3, 4, tzinfo=datetime.UTC)},
        datetime.timedelta(days=3),
        uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        b"\x00\xff",
    ]
    for value in values:
        back = decode_trait(encode_trait(value))
        assert back == value and type(back) is type(value)
        assert json.dumps(back, default=repr) == json.dumps(value, default=repr)
    nan = decode_trait(encode_trait(math.nan))
    assert isinstance(nan, float) and math.isnan(nan)
    view = decode_trait(encode_trait(memoryview(b"ab")))
    assert isinstance(view, memoryview) and view.tobytes() == b"ab"
    with pytest.raises(NotEncodable):
        encode_trait(lambda: None)


def test_more_disagreements_than_the_cap_plan_alike_and_are_kept_bounded(
    tmp_path, engines, monkeypatch
):
    """2,500 members two audiences disagree about (more than MAX_FIELD_ISSUES), listed in
    opposite orders, some already on a list in Iterable: both paths give the same plan in
    every output, and the DuckDB path keeps no more disagreements than it lists."""
    from reconciler import planning
    from reconciler.render.plans import plan_json, plan_markdown, plan_text
    from reconciler.traits import values

    cap = values.MAX_FIELD_ISSUES
    rows = 2_500
    agree = set(range(0, rows, 7))  # these members get the same tier from both
    (tmp_path / "data").mkdir()
    a = ["email,tier,n"] + [f"m{n}@x.com,gold,{n}" for n in range(rows)]
    b = ["email,tier,n"] + [
        f"m{n}@x.com,{'gold' if n in agree else 'silver'},{n}" for n in reversed(range(rows))
    ]
    (tmp_path / "data" / "a.csv").write_text("\n".join(a) + "\n")
    (tmp_path / "data" / "b.csv").write_text("\n".join(b) + "\n")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": "email", "apiKey": {"env": "K"}},
        },
        *(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {"destination": "d", "members": {"csv": f"data/{name}.csv"}, "traits": "t"},
            }
            for name in ("a", "b")
        ),
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "t"},
            "spec": {"fields": {"tier_name": "tier", "n": {"from": "n", "type": "number"}}},
        },
    ]
    (tmp_path / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("d", "email", KEY)
    on_a = project.add_list("a")
    for n in range(0, rows, 50):  # already on a: read and compared unless in conflict
        project.add_user(
            email=f"m{n}@x.com", data_fields={"tier_name": "bronze", "n": n}, list_ids=[on_a]
        )
    kept: list[tuple[int, int]] = []
    real_plan_fields = planning.plan_fields

    def plan_fields(*args: Any, **kwargs: Any) -> Any:
        found = real_plan_fields(*args, **kwargs)
        kept.append((len(found.issues), found.issues_unlisted))
        return found

    monkeypatch.setattr(planning, "plan_fields", plan_fields)
    conflicting = rows - len(agree)
    outputs = []
    for name in ENGINES:
        plan = _plan(tmp_path, emulator, engines[name], "export")
        (dest,) = plan.destinations
        assert len(dest.field_issues) == cap
        assert dest.field_issues_unlisted == conflicting - cap
        # Listed in b's order (the audience named last), the first `cap` of its rows.
        listed = [i.value for _a, i in dest.field_issues]
        assert listed == [f"m{n}@x.com" for n in reversed(range(rows)) if n not in agree][:cap]
        text, markdown = plan_text(plan), plan_markdown(plan)
        if dest.member_read:  # how members were read differs by engine by design
            text = text.replace(dest.member_read, "READ")
            markdown = markdown.replace(dest.member_read, "READ")
        saved = tmp_path / f"{name}.plan"
        save_plan(saved, plan, "digest", tmp_path, None)
        outputs.append(
            (
                text,
                markdown,
                json.loads(plan_json(plan))["summary"],
                _data(plan, tmp_path),
                _data(load_plan(saved).plan, tmp_path),
            )
        )
    assert outputs[0] == outputs[1]
    # Python lists every disagreement before the cap; the DuckDB path keeps only the cap.
    assert kept == [(conflicting, 0), (cap, conflicting - cap)]
    # No conflicting tier is sent; the agreed one is.
    add_fields = outputs[1][3]["add_fields"]
    sent = {k: v for fields in add_fields.values() for k, v in fields.items()}
    assert all("tier_name" not in sent[f"m{n}@x.com"] for n in range(rows) if n not in agree)
    assert all(sent[f"m{n}@x.com"]["tier_name"] == "gold" for n in agree if n % 50)


def test_fields_differing_only_in_case_are_read_alike_from_an_export(tmp_path, engines):
    # Iterable's field names are case-sensitive (`Tier` and `tier` are two fields); DuckDB's
    # column names are not, so the export read must tell them apart by other means.
    (tmp_path / "m.csv").write_text("email,userId,plan\na@x.com,u1,pro\nb@x.com,u2,free\n")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": "hybrid", "apiKey": {"env": "K"}},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "Audience",
            "metadata": {"name": "crm"},
            "spec": {"destination": "d", "members": {"csv": "m.csv"}, "traits": "crm"},
        },
        {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "crm"},
            "spec": {"fields": {"Tier": "plan", "tier": "plan", "a/b~c": "plan"}},
        },
    ]
    (tmp_path / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("d", "hybrid", KEY)
    crm = project.add_list("crm")
    same = {"Tier": "pro", "tier": "pro", "a/b~c": "pro"}
    project.add_user(email="a@x.com", user_id="u1", data_fields=same, list_ids=[crm])
    other = {"Tier": "free", "tier": "gold", "a/b~c": "free"}
    project.add_user(email="b@x.com", user_id="u2", data_fields=other, list_ids=[crm])

    plans = {name: _plan(tmp_path, emulator, engines[name], "export") for name in ENGINES}
    expected = _data(plans["python"], tmp_path)
    assert _data(plans["duckdb"], tmp_path) == expected
    assert expected["read"].method == "export"
    assert [(key, changes) for key, _k, _e, _u, changes, _m in expected["updates"]] == [
        ("u2", {"tier": ("gold", "free")})
    ]


def test_an_export_read_into_a_temporary_directory_with_a_quote_in_its_path(tmp_path):
    # The export is written to the workspace and read back by its path, put into DuckDB's
    # SQL: a quote in it (C:\\Users\\O'Brien\\AppData\\Local\\Temp) ended the plan in a
    # parser error. Both reads: by column, and by JSON pointer for case-differing names.
    temp = tmp_path / "O'Brien" / "Temp"
    temp.mkdir(parents=True)
    made = _engines(temp)
    try:
        by_column = tmp_path / "by-column"
        by_column.mkdir()
        test_both_paths_plan_trait_mappings_alike(by_column, made, "hybrid", "export")
        by_pointer = tmp_path / "by-pointer"
        by_pointer.mkdir()
        test_fields_differing_only_in_case_are_read_alike_from_an_export(by_pointer, made)
    finally:
        for engine in made.values():
            engine.close()


def _issues_shown(data: dict, root) -> list[tuple[str, str]]:
    """A plan's value issues as (where, message), the root as ROOT and unmarked."""
    return [
        (where.replace(str(root), "ROOT"), message.replace("\ue000", "").replace("\ue001", ""))
        for _a, where, message, _v in data["issues"]
    ]


def test_an_exports_null_or_a_sheets_error_value_leaves_the_field_as_it_is(tmp_path, engines):
    # Snowflake's COPY INTO and MySQL write NULL as \N, a sheet a failed lookup as #N/A:
    # an untyped field was sent that text, over the member's value in Iterable. Both paths
    # now name the value and leave the field as it is.
    root = _manifests(tmp_path, "email")
    crm = [*CRM]
    crm[2] = "b@x.com,u2,\\N,2.5,,bob"
    crm[3] = "c@x.com,u3,#N/A,\\N,2025-09-15,cat"
    (root / "data" / "crm.csv").write_text("\n".join(crm) + "\n", encoding="utf-8")
    emulator = _emulator("email")
    data = {name: _data(_plan(root, emulator, engines[name], "export"), root) for name in ENGINES}
    assert data["duckdb"] == data["python"]
    issues = _issues_shown(data["python"], root)
    null = (
        "is how an export writes a missing value (NULL), not a value; export missing values "
        "as empty cells (Snowflake: NULL_IF = ('')); the field is not written for this member"
    )
    error = (
        "is a spreadsheet's error value, a formula that failed; fix it and export again; the "
        "field is not written for this member"
    )
    assert (
        "ROOT/data/crm.csv:3",
        f"field 'plan_tier' (column 'plan'): '\\N' {null}",
    ) in issues
    assert ("ROOT/data/crm.csv:4", f"field 'plan_tier' (column 'plan'): '#N/A' {error}") in issues
    assert ("ROOT/data/crm.csv:4", f"field 'ltv' (column 'ltv'): '\\N' {null}") in issues
    updates = {key: changes for key, _k, _e, _u, changes, _m in data["python"]["updates"]}
    assert "plan_tier" not in updates.get("b@x.com", {})
    assert "plan_tier" not in updates.get("c@x.com", {})


def test_a_value_misread_as_windows_1252_leaves_the_field_as_it_is(tmp_path, engines):
    # A UTF-8 file opened in Excel as ANSI and saved again holds `Ã©lite` for `élite`: it
    # was sent over the member's value. Both paths now name it and leave the field; text
    # of the same letters written properly is sent.
    root = _manifests(tmp_path, "email")
    crm = [*CRM]
    crm[7] = "f@x.com,u6,Ã©lite,3,,fay"
    crm[3] = "c@x.com,u3,élite,lots,2025-09-15,cat"
    (root / "data" / "crm.csv").write_text("\n".join(crm) + "\n", encoding="utf-8")
    emulator = _emulator("email")
    data = {name: _data(_plan(root, emulator, engines[name], "export"), root) for name in ENGINES}
    assert data["duckdb"] == data["python"]
    issues = _issues_shown(data["python"], root)
    assert (
        "ROOT/data/crm.csv:8",
        "field 'plan_tier' (column 'plan'): 'Ã©lite' is UTF-8 text misread as Windows-1252 and "
        "saved again (Ã© for é, as Excel saves a UTF-8 file it opened as ANSI); import the "
        "original export as UTF-8 and save it again; the field is not written for this member",
    ) in issues
    updates = {key: changes for key, _k, _e, _u, changes, _m in data["python"]["updates"]}
    assert "plan_tier" not in updates.get("f@x.com", {})
    assert updates["c@x.com"]["plan_tier"] == ("basic", "élite")


def test_a_phone_number_iterable_would_not_store_is_named_and_not_sent(tmp_path, engines):
    # Iterable takes phoneNumber from a user update "in the proper format and include a
    # country code", +16503926753 (its SMS overview), and does not save another form
    # (Segment's docs, PR 4340): a CRM's (650) 392-6753 was sent every run, saved never,
    # SMS never reached the member, and each next plan planned it again. Both paths now
    # name such a value at its row and leave the field as it is; E.164 goes out.
    root = _manifests(tmp_path, "email")
    phones = ["+16503926753", "(650) 392-6753", "+4915112345678", "+44 20 7183 8750"]
    phones += ["+16503926753", "4915112345678", ""]
    rows = zip(CRM[1:], phones, strict=True)
    crm = [CRM[0] + ",phone", *(f"{row},{phone}" for row, phone in rows)]
    (root / "data" / "crm.csv").write_text("\n".join(crm) + "\n", encoding="utf-8")
    manifests = (root / "m.yaml").read_text(encoding="utf-8")
    manifests = manifests.replace('"plan_tier": "plan", "ltv"', '"phoneNumber": "phone", "ltv"')
    (root / "m.yaml").write_text(manifests, encoding="utf-8")
    emulator = _emulator("email")
    data = {name: _data(_plan(root, emulator, engines[name], "export"), root) for name in ENGINES}
    assert data["duckdb"] == data["python"]
    issues = [
        (where.replace(str(root), "ROOT"), message.replace("\ue000", "").replace("\ue001", ""))
        for _a, where, message, _v in data["python"]["issues"]
        if "phoneNumber" in message
    ]
    reason = (
        "is not a phone number as Iterable stores one (E.164: a +, the country code and "
        "the number's digits, +16503926753), and Iterable would not save it; write it so in "
        "the source, or with a template; the field is not written for this member"
    )
    assert issues == [
        ("ROOT/data/crm.csv:3", f"field 'phoneNumber' (column 'phone'): '(650) 392-6753' {reason}"),
        (
            "ROOT/data/crm.csv:5",
            f"field 'phoneNumber' (column 'phone'): '+44 20 7183 8750' {reason}",
        ),
        ("ROOT/data/crm.csv:7", f"field 'phoneNumber' (column 'phone'): '4915112345678' {reason}"),
    ]
    updates = {key: changes for key, _k, _e, _u, changes, _m in data["python"]["updates"]}
    assert updates["a@x.com"]["phoneNumber"] == (None, "+16503926753")
    assert updates["c@x.com"]["phoneNumber"] == (None, "+4915112345678")
    assert "phoneNumber" not in updates.get("b@x.com", {})
    assert "phoneNumber" not in updates.get("d@x.com", {})
    adds = data["python"]["add_fields"]["crm"]
    assert "phoneNumber" not in adds["e@x.com"]


def test_half_of_a_surrogate_pair_in_a_value_is_named_not_an_internal_error(tmp_path, engines):
    # JSON text may write half a UTF-16 pair ("\ud83d": JavaScript's JSON.stringify writes
    # a string cut inside an emoji so), which json reads as a lone surrogate, and a
    # template's "\ud83d" makes one: UTF-8 has no form for it, and plan stopped with
    # "internal error: UnicodeEncodeError". Both paths now name the value at its row and
    # leave the field as it is; a whole pair ("\ud83d\ude80") is its emoji.
    root = _manifests(tmp_path, "email")
    header = CRM[0] + ",prefs"
    prefs = ['"{""n"": ""Ann \\ud83d""}"', '"{""n"": ""Bob \\ud83d\\ude80""}"']
    prefs += ['"{""\\udc00"": 1}"', "", "", "", ""]
    rows = zip(CRM[1:], prefs, strict=True)
    crm = [header, *(f"{row},{value}" for row, value in rows)]
    (root / "data" / "crm.csv").write_text("\n".join(crm) + "\n", encoding="utf-8")
    manifests = (root / "m.yaml").read_text(encoding="utf-8")
    manifests = manifests.replace(
        '"plan_tier": "plan", "ltv"',
        '"prefs": {"from": "prefs", "type": "object"}, '
        '"plan_tier": {"template": "{{ \'\\\\ud83d\' if first == \'dan\' }}{{ plan }}"}, "ltv"',
    )
    (root / "m.yaml").write_text(manifests, encoding="utf-8")
    emulator = _emulator("email")
    data = {name: _data(_plan(root, emulator, engines[name], "export"), root) for name in ENGINES}
    assert data["duckdb"] == data["python"]
    issues = [
        (where.replace(str(root), "ROOT"), message)
        for _a, where, message, _v in data["python"]["issues"]
        if "surrogate" in message
    ]
    half = (
        "half of a UTF-16 surrogate pair, which is no character on its own (text cut inside "
        "an emoji) and no request can carry; fix it in the source; the field is not written "
        "for this member"
    )
    assert [(where, message.split(" (", 1)[0]) for where, message in issues] == [
        ("ROOT/data/crm.csv:2", "field 'prefs'"),
        ("ROOT/data/crm.csv:4", "field 'prefs'"),
        ("ROOT/data/crm.csv:5", "field 'plan_tier'"),
    ]
    assert issues[0][1].endswith(f"holds \\ud83d, {half}")
    assert issues[1][1].endswith(f"holds \\udc00, {half}")
    assert issues[2][1].endswith(f"which holds \\ud83d, {half}")
    adds_and_updates = json.dumps(data["python"]["updates"]) + json.dumps(
        data["python"]["add_fields"]
    )
    assert "\\ud83d\\ude80" in adds_and_updates  # Bob's emoji goes out
    # Quoted in a message masked or in full, the value prints (a masked one began with
    # the half, and printing the plan failed as sending it did).
    for _a, _w, message, _v in data["python"]["issues"]:
        for show_members in (False, True):
            reveal(message, show_members).encode("utf-8")


def test_forty_audiences_sharing_and_disagreeing_on_fields_plan_alike(tmp_path, engines):
    """40 audiences of one destination, overlapping in members, under three mappings
    (two merging nested objects, one replacing them) that share fields: values agree,
    differ only as text (10 and 10.0), differ, or are equal objects under different merge
    modes; some lists exist with members on them holding last week's values, the rest
    are new (every member subscribed with fields). The DuckDB path merges them as the
    Python path does: the same plan, field for field (it once joined every audience to
    every earlier one: at 30 audiences of 500 members it ran out of memory)."""
    (tmp_path / "data").mkdir()
    pool = [f"member{n:02d}@example.com" for n in range(50)]
    shared = {
        "plan": "plan",
        "score": {"from": "score", "type": "number"},
        "prefs": {"from": "prefs", "type": "object"},
    }
    mappings = {
        "keep": (shared, True),
        "wipe": (shared, False),
        "lite": ({"plan": "plan", "tier": "tier"}, True),
    }
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "Destination",
            "metadata": {"name": "d"},
            "spec": {"region": "us", "projectType": "email", "apiKey": {"env": "K"}},
        },
    ]
    for name, (fields, merge) in mappings.items():
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": name},
                "spec": {"fields": fields, "mergeNestedObjects": merge},
            }
        )
    members: dict[str, list[str]] = {}
    for a in range(40):
        name = f"aud{a:02d}"
        emails = sorted({pool[(a * 7 + r * 3) % len(pool)] for r in range(12)})
        members[name] = emails
        lines = ["email,plan,score,prefs,tier"]
        for e, email in enumerate(emails):
            plan = "free" if (a + e) % 11 == 0 else "pro"
            score = "10.0" if a % 4 == 1 else ("12" if (a + e) % 13 == 0 else "10")
            prefs = '"{""a"": 1}"' if e % 5 else ""
            tier = f"t{(a + e) % 2}" if e % 3 else ""
            lines.append(f"{email},{plan},{score},{prefs},{tier}")
        (tmp_path / "data" / f"{name}.csv").write_text("\n".join(lines) + "\n")
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Audience",
                "metadata": {"name": name},
                "spec": {
                    "destination": "d",
                    "members": {"csv": f"data/{name}.csv"},
                    "traits": ("keep", "wipe", "lite")[a % 3],
                },
            }
        )
    (tmp_path / "m.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    emulator = Emulator(limits=Limits.unlimited())
    project = emulator.add_project("d", "email", KEY)
    on_lists: dict[str, list[int]] = {}
    for a in range(0, 40, 2):  # every other list exists, with most of its members on it
        name = f"aud{a:02d}"
        list_id = project.add_list(name)
        for email in members[name][:-2]:
            on_lists.setdefault(email, []).append(list_id)
    for n, email in enumerate(pool):
        if email in on_lists:
            old = {"plan": "basic", "score": 9, "prefs": {"z": 1}, "tier": "t0"}
            project.add_user(
                email=email, data_fields=old if n % 4 else {}, list_ids=on_lists[email]
            )
    datas = [_data(_plan(tmp_path, emulator, engines[e], "export"), tmp_path) for e in ENGINES]
    assert datas[1] == datas[0]
    # Not an empty case: fields ride on subscribes and on updates, audiences disagree.
    assert any(datas[0]["add_fields"].values())
    assert datas[0]["updates"]
    assert any("from one and" in m for _a, _w, m, _v in datas[0]["issues"])
    assert any(" from both, merged " in m for _a, _w, m, _v in datas[0]["issues"])
