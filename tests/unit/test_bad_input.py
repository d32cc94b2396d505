"""Whatever a user feeds reconciler (YAML, CSV bytes, emails, userIds), the answer is the
members or a clear error with its location, never a traceback; and manifests that are not
UTF-8, symbolic links out of the manifest directory and member sources outside the
repository are refused. Issue 8."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifest import load_manifests
from reconciler.members.identity import InvalidIdentity, Member, make_member
from reconciler.sources.csv_file import MAX_LINE_BYTES
from reconciler.state.desired import build_desired

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# FILE:LINE[:COL]: message, as every located problem is printed.
LOCATED = re.compile(r"^(error: )?\S+?\.(ya?ml|csv):\d+(:\d+)?: \S", re.MULTILINE)

DESTINATION = {
    "apiVersion": "reconciler/v1",
    "kind": "Destination",
    "metadata": {"name": "prod"},
    "spec": {"region": "sandbox", "projectType": "hybrid"},
}


def audience(members: object, project_type: str = "hybrid") -> str:
    destination = dict(DESTINATION, spec={"region": "sandbox", "projectType": project_type})
    doc = {
        "apiVersion": "reconciler/v1",
        "kind": "Audience",
        "metadata": {"name": "aud"},
        "spec": {"destination": "prod", "members": members},
    }
    return json.dumps(destination, indent=1) + "\n---\n" + json.dumps(doc, indent=1)


@contextmanager
def repo() -> Iterator[Path]:
    """A fresh git-less repository: <tmp>/manifests is the manifest directory."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "manifests").mkdir()
        yield root


def validate(manifests: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", str(manifests), *extra])
    # An exception escaping the command is a traceback for the user: never acceptable.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


def assert_clear(code: int, output: str) -> None:
    assert "Traceback" not in output and "internal error" not in output, output
    if code != 0:
        assert code == 1
        assert LOCATED.search(output), output


# --- CSV ------------------------------------------------------------------------------

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", '=HYPERLINK("x")']
cell = st.one_of(
    st.sampled_from(["a@example.com", "B@Example.COM ", "u-1", "", " ", "x", "not an email"]),
    st.sampled_from(FORMULAS),
    st.text(max_size=12),
    st.text(min_size=1, max_size=3).map(lambda t: t * 50_000),  # far past csv's field limit
)
row = st.lists(cell, min_size=0, max_size=5).map(
    lambda cells: ",".join(f'"{c}"' if "," in c else c for c in cells)
)
csv_text = st.tuples(
    st.sampled_from(["email", "email,userId", "userId,email,plan", "mail", "", "\ufeffemail"]),
    st.lists(row, max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
).map(lambda t: t[2].join([t[0], *t[1]]))
csv_bytes = st.one_of(
    csv_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
    csv_text.map(lambda text: b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")),
    csv_text.map(lambda text: text.encode("utf-16")),
    csv_text.map(lambda text: text.encode("latin-1", "replace") + b"\xe9\xff"),
    st.binary(max_size=300),
    st.tuples(csv_text, st.binary(max_size=20)).map(
        lambda t: t[0].encode("utf-8", "replace") + t[1]
    ),
)


@FUZZ
@given(csv_bytes, st.sampled_from(["hybrid", "email", "userId"]))
def test_any_csv_gives_members_or_a_located_error(content: bytes, project_type: str) -> None:
    with repo() as root:
        (root / "manifests" / "m.csv").write_bytes(content)
        (root / "manifests" / "aud.yaml").write_text(audience({"csv": "m.csv"}, project_type))
        try:
            desired = build_desired(load_manifests(root / "manifests"))
        except ReconcilerError as error:
            assert "aud.yaml:" in str(error) or "m.csv" in str(error), str(error)
        else:
            for item in desired["prod"].lists:
                assert all(isinstance(m, Member) for m in item.members.values())
                assert all(re.match(r"^\S+m\.csv:\d+$", i.where) for i in item.issues)
        assert_clear(*validate(root / "manifests"))


def test_a_huge_csv_field_names_its_row() -> None:
    with repo() as root:
        # Past the longest line either engine reads (a cell of 200 kB reads in both).
        huge = "x" * (MAX_LINE_BYTES + 1)
        (root / "manifests" / "m.csv").write_text(f"email\na@example.com\n{huge}@example.com\n")
        (root / "manifests" / "aud.yaml").write_text(audience({"csv": "m.csv"}))
        code, output = validate(root / "manifests")
        assert code == 1
        assert "m.csv:3" in output and "field larger than" in output
        assert len(output) < 2000  # the field itself is not echoed


def test_formula_like_cells_are_data_never_formulas() -> None:
    with repo() as root:
        rows = [f",{f}" for f in FORMULAS] + [f"{f}," for f in FORMULAS]
        (root / "manifests" / "m.csv").write_text("email,userId\n" + "\n".join(rows) + "\n")
        (root / "manifests" / "aud.yaml").write_text(audience({"csv": "m.csv"}))
        desired = build_desired(load_manifests(root / "manifests"))
        item = desired["prod"].lists[0]
        # As userIds they are printable ASCII, so valid (Iterable is the judge); as emails
        # they are invalid, each named with its row.
        assert sorted(item.members) == sorted(FORMULAS)
        wheres = sorted(int(i.where.rsplit(":", 1)[1]) for i in item.issues)
        assert wheres == list(range(len(FORMULAS) + 2, 2 * len(FORMULAS) + 2))
        code, output = validate(root / "manifests")
        assert code == 1
        assert_clear(code, output)


# --- YAML -----------------------------------------------------------------------------

FRAGMENTS = [
    "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: a}\nspec:\n",
    "  destination: prod\n",
    "  members:\n    inline:\n",
    "      - x@example.com\n",
    "      - {userId: '=cmd|x'}\n",
    "      - {email: 7}\n",
    "    csv: nope.csv\n",
    "    csv: ../../../../etc/passwd\n",
    "    csv: /etc/passwd\n",
    "---\n",
    "&a [*a]\n",
    "!!binary x\n",
    "\t",
    ": ",
    "- ",
    "{",
    "\x00",
    "\ufeff",
]
yaml_bytes = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=25).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=200),
)


@FUZZ
@given(yaml_bytes)
# Found by the fuzz: a manifest read as a Git LFS pointer was a problem with no line.
@example(b"version https://hawser.github.com/spec/")
@example(b"\x00GITCRYPT\x00\x12")
def test_any_manifest_bytes_validate_to_ok_or_located_problems(content: bytes) -> None:
    with repo() as root:
        (root / "manifests" / "dest.yaml").write_text(json.dumps(DESTINATION))
        (root / "manifests" / "aud.yaml").write_bytes(content)
        code, output = validate(root / "manifests")
        assert_clear(code, output)
        assert_clear(*validate(root / "manifests", "--debug"))


# --- emails and userIds ---------------------------------------------------------------

identifier = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="ascii"), max_size=60),
    st.from_regex(r"[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,10}\.[a-z]{2,4}", fullmatch=True),
    st.sampled_from(FORMULAS),
    # an otherwise good email carrying something for the terminal that prints it
    st.tuples(
        st.from_regex(r"[a-z]{1,5}", fullmatch=True),
        st.sampled_from(["\x1b[2J", "\x07", "\u202e", "\x00", "\x7f", "\u2028"]),
        st.sampled_from(["@example.com", "@ex\x1bample.com"]),
    ).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["hybrid", "email", "userId"]), identifier, identifier)
def test_identity_is_a_member_or_a_reason(project_type, email, user_id) -> None:
    try:
        member = make_member(project_type, email, user_id)
    except InvalidIdentity as error:
        assert error.reason
        return
    assert member.key in member.identifiers
    if member.email is not None:
        assert member.email == member.email.strip().lower()
        # Nothing that could steer a terminal or break a line in output.
        assert member.email.isprintable()
    if member.user_id is not None:
        assert member.user_id == user_id and len(member.user_id) <= 52


@FUZZ
@given(
    st.lists(
        st.one_of(
            identifier.filter(lambda x: x is not None),
            st.fixed_dictionaries({"email": identifier, "userId": identifier}),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_inline_members_validate_with_their_line(entries) -> None:
    with repo() as root:
        (root / "manifests" / "aud.yaml").write_text(audience({"inline": entries}))
        assert_clear(*validate(root / "manifests"))


# --- refusals -------------------------------------------------------------------------


def test_a_manifest_that_is_not_utf8_is_refused_with_its_position() -> None:
    with repo() as root:
        (root / "manifests" / "dest.yaml").write_bytes(
            "apiVersion: reconciler/v1\nkind: Destination # caf\xe9\n".encode("latin-1")
        )
        code, output = validate(root / "manifests")
        assert code == 1
        assert "dest.yaml:2:" in output and "not UTF-8" in output


def test_a_symlinked_manifest_leading_outside_the_manifest_directory_is_refused() -> None:
    with repo() as root:
        (root / "outside.yaml").write_text(audience({"inline": ["a@example.com"]}))
        (root / "manifests" / "aud.yaml").symlink_to(root / "outside.yaml")
        (root / "manifests" / "dest.yaml").write_text(json.dumps(DESTINATION))
        (root / "elsewhere").mkdir()
        (root / "manifests" / "more").symlink_to(root / "elsewhere", target_is_directory=True)
        code, output = validate(root / "manifests")
        assert code == 1
        assert "aud.yaml: symbolic link to" in output and "refused" in output
        assert "more: symbolic link to" in output


def test_a_symlink_inside_the_manifest_directory_is_fine() -> None:
    with repo() as root:
        (root / "manifests" / "real").mkdir()
        (root / "manifests" / "real" / "aud.yaml").write_text(audience({"inline": ["a@x.io"]}))
        (root / "manifests" / "aud.yaml").symlink_to(root / "manifests" / "real" / "aud.yaml")
        code, output = validate(root / "manifests" / "aud.yaml")
        assert code == 0, output


def test_a_symbolic_link_loop_is_an_error_naming_it_not_an_internal_error() -> None:
    # Python 3.11's Path.resolve() raises RuntimeError on a loop (3.13 leaves it unresolved):
    # a link to itself where a manifest or a member file should be ended validate, plan and
    # apply in "internal error: RuntimeError: Symlink loop".
    with repo() as root:
        manifests = root / "manifests"
        (manifests / "loop.yaml").symlink_to(manifests / "loop.yaml")
        (manifests / "dest.yaml").write_text(json.dumps(DESTINATION))
        code, output = validate(manifests)
        assert "internal error" not in output and "Traceback" not in output, output
        assert code == 1 and "loop.yaml" in output, output
    for kind in ("csv", "parquet", "database"):
        with repo() as root:
            manifests = root / "manifests"
            (manifests / f"m.{kind}").symlink_to(manifests / f"m.{kind}")
            (manifests / "aud.yaml").write_text(audience(source(kind, f"m.{kind}")))
            code, output = validate(manifests)
            assert "internal error" not in output and "Traceback" not in output, output
            assert code == 1 and LOCATED.search(output) and f"m.{kind}" in output, output


def source(kind: str, path: str) -> dict[str, str]:
    if kind == "database":
        return {"sql": "SELECT email FROM t", "database": path}
    return {kind: path}


@pytest.mark.parametrize("kind", ["csv", "parquet", "database"])
def test_member_sources_outside_the_repository_are_refused(kind: str) -> None:
    with tempfile.TemporaryDirectory() as outer:
        secret = Path(outer, f"secret.{kind}")
        secret.write_text("email\nleak@example.com\n")
        with repo() as root:
            manifests = root / "manifests"
            (manifests / "aud.yaml").write_text(audience(source(kind, str(secret))))
            code, output = validate(manifests)
            assert code == 1
            assert f"members.{kind}: {secret} is outside the repository" in output
            assert LOCATED.search(output)
            # ... also through .. and through a link that leads out
            relative = os.path.relpath(secret, manifests)
            (manifests / "aud.yaml").write_text(audience(source(kind, relative)))
            assert "is outside the repository" in validate(manifests)[1]
            (manifests / f"link.{kind}").symlink_to(secret)
            (manifests / "aud.yaml").write_text(audience(source(kind, f"link.{kind}")))
            code, output = validate(manifests)
            assert code == 1 and "resolves to" in output
            assert "leak@example.com" not in output


def test_sources_anywhere_in_the_repository_are_fine() -> None:
    with repo() as root:
        (root / "data").mkdir()
        (root / "data" / "m.csv").write_text("email\na@example.com\n")
        (root / "manifests" / "aud.yaml").write_text(audience({"csv": "../data/m.csv"}))
        code, output = validate(root / "manifests")
        assert code == 0, output


@pytest.mark.parametrize("kind", ["csv", "parquet", "database"])
@pytest.mark.parametrize("private", [".git", ".reconciler"])
def test_member_sources_in_git_or_reconciler_state_are_refused(kind: str, private: str) -> None:
    with repo() as root:
        (root / private).mkdir()
        (root / private / "config").write_text("email\nleak@example.com\n")
        manifests = root / "manifests"
        (manifests / "aud.yaml").write_text(audience(source(kind, f"../{private}/config")))
        code, output = validate(manifests)
        assert code == 1
        assert f"members.{kind}: ../{private}/config is in the repository's {private}" in output
        assert LOCATED.search(output) and "leak@example.com" not in output


def test_the_repository_is_the_git_work_tree_when_there_is_one() -> None:
    with repo() as root:
        (root / ".git").mkdir()
        nested = root / "deploy" / "manifests"
        nested.mkdir(parents=True)
        (root / "shared.csv").write_text("email\na@example.com\n")
        (nested / "aud.yaml").write_text(audience({"csv": "../../shared.csv"}))
        assert validate(nested)[0] == 0  # two levels up, still in the git work tree
        (root / ".git").rmdir()
        assert "outside the repository" in validate(nested)[1]


def test_load_errors_never_show_a_traceback_even_with_debug() -> None:
    with repo() as root:
        (root / "manifests" / "aud.yaml").write_bytes(b"\xff\xfe\x00junk")
        with pytest.raises(ManifestError):
            load_manifests(root / "manifests")
        assert_clear(*validate(root / "manifests", "--debug"))


# --- what fuzzing found: one located line each, never "internal error" ----------------


@pytest.mark.parametrize(
    "members",
    [
        {"csv": "data/\x00x.csv"},
        {"parquet": "a\x00.parquet"},
        {"sql": "SELECT 1", "database": "\x00"},
    ],
)
def test_a_nul_byte_in_a_source_path_is_a_located_problem(members: dict) -> None:
    with repo() as root:
        (root / "manifests" / "aud.yaml").write_text(audience(members))
        code, output = validate(root / "manifests")
        assert_clear(code, output)
        assert code == 1 and "a file path cannot contain a NUL byte" in output


@pytest.mark.parametrize(
    "members",
    [
        {"csv": f"data/{'a' * 256}.csv"},
        {"csv": f"{'é' * 128}/x.csv"},  # 256 bytes in 128 characters
        {"parquet": f"data/{'b' * 300}/x.parquet"},
        {"sql": "SELECT 1", "database": f"{'c' * 260}.duckdb"},
    ],
)
def test_a_file_name_longer_than_a_file_system_allows_is_a_located_problem(
    members: dict,
) -> None:
    """It was an internal error (OSError: File name too long) at the path's first look."""
    with repo() as root:
        (root / "manifests" / "data").mkdir()
        (root / "manifests" / "aud.yaml").write_text(audience(members))
        code, output = validate(root / "manifests")
        assert_clear(code, output)
        assert code == 1 and "longer than 255 bytes" in output
        assert "aud.yaml:" in output


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Hi {{ first_name | nosuchfilter }}", "No filter named 'nosuchfilter'"),
        ("{{ first_name is nosuchtest }}", "No test named 'nosuchtest'"),
        # Inside a branch jinja leaves both to render time: an error on every member's
        # row that takes the branch, and none until one does.
        (
            "{% if first_name %}Hi{% else %}{{ email | titel }}{% endif %}",
            "No filter named 'titel' (did you mean 'title'?)",
        ),
        ("{% if first_name is evn %}Hi{% endif %}", "No test named 'evn'"),
        # Outside a branch too: jinja's compiler found it first, and named no near miss.
        ("Hi {{ first_name | titel }}", "No filter named 'titel' (did you mean 'title'?)"),
        ("{{ first_name is evn }}", "No test named 'evn' (did you mean 'even'?)"),
    ],
)
def test_an_unknown_jinja_filter_or_test_is_a_located_problem(template: str, message: str) -> None:
    with repo() as root:
        (root / "manifests" / "aud.yaml").write_text(audience({"inline": [{"email": "a@b.co"}]}))
        mapping = {
            "apiVersion": "reconciler/v1",
            "kind": "TraitMapping",
            "metadata": {"name": "crm"},
            "spec": {"fields": {"greeting": {"template": template}}},
        }
        (root / "manifests" / "traits.yaml").write_text(json.dumps(mapping))
        code, output = validate(root / "manifests")
        assert_clear(code, output)
        assert code == 1 and "traits.yaml:" in output and message in output


def _project_of(lists: object) -> str:
    project = {"name": "prod", "projectType": "hybrid", "apiKeySha256": "0" * 64}
    project.update(lists=lists, users=[])
    return json.dumps({"version": 1, "nextListId": 1000001, "projects": [project]})


@pytest.mark.parametrize(
    "content",
    [
        "{broken",
        # Found by fuzzing: JSON too deep for Python's parser (RecursionError), a member's
        # position past the users (IndexError), a list id JSON cannot be a key of.
        "[" * 100_000 + "]" * 100_000,
        _project_of(
            [{"id": 1, "name": "x", "createdAt": 0, "listType": "Standard", "members": [5]}]
        ),
        _project_of([{"id": [1], "name": "x", "createdAt": 0, "listType": "Standard"}]),
        None,  # a directory where the file should be
    ],
    ids=["not-json", "too-deep", "member-past-users", "list-id-a-list", "a-directory"],
)
def test_a_damaged_sandbox_file_is_one_line_saying_what_to_do(content: str | None) -> None:
    with repo() as root:
        (root / "manifests" / "aud.yaml").write_text(audience({"inline": ["a@b.co"]}))
        state = root / "state"
        state.mkdir()
        if content is None:
            (state / "sandbox.json").mkdir()
        else:
            (state / "sandbox.json").write_text(content)
        result = CliRunner().invoke(
            app, ["plan", str(root / "manifests"), "--state-dir", str(state)]
        )
        output = result.stdout + result.stderr
        assert result.exit_code == 1, output
        assert "internal error" not in output and "Traceback" not in output
        assert "sandbox state file" in output and "delete it" in output, output


def _sandbox_state(**changes: object) -> str:
    """A sandbox state of project 'prod' (its key the one connect.py gives it, so plan uses
    it) with one list of one member, `changes` made to it: "user.email" sets the user's
    email, "list.id" the list's, "name" the project's, "nextListId" the state's."""
    from reconciler.emulator.project import hash_api_key

    user: dict[str, object] = {
        "email": "a@b.co",
        "userId": None,
        "dataFields": {},
        "unsubscribedChannelIds": [],
        "signupDate": 1_700_000_000_000,
        "profileUpdatedAt": 1_700_000_000_000,
    }
    listed: dict[str, object] = {
        "id": 1000001,
        "name": "aud",
        "description": None,
        "createdAt": 1_700_000_000_000,
        "listType": "Standard",
        "members": [0],
    }
    project: dict[str, object] = {
        "name": "prod",
        "projectType": "hybrid",
        "apiKeySha256": hash_api_key("sandbox:prod"),
        "lists": [listed],
        "users": [user],
    }
    state: dict[str, object] = {"version": 1, "nextListId": 1000002, "projects": [project]}
    parts = {"user": user, "list": listed, "": project}
    for where, value in changes.items():
        part, _, key = where.rpartition(".")
        (state if where == "nextListId" else parts[part])[key] = value
    return json.dumps(state)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        # Found by fuzzing: JSON of the right outline with a wrong value. A user with
        # neither identifier failed an assertion; a project name that is not a string
        # read as "API key already belongs to project False"; a date past year 9999 and a
        # string for a number ended in internal errors when a request showed them; a list
        # id that is not an integer had the client retry its list for over 20 s.
        (_sandbox_state(**{"user.email": None}), "projects[0].users[0] has neither email"),
        (_sandbox_state(name=False), "projects[0].name should be a string"),
        (_sandbox_state(**{"user.signupDate": 10**17}), "projects[0].users[0].signupDate"),
        (_sandbox_state(**{"list.createdAt": "0"}), "projects[0].lists[0].createdAt"),
        (_sandbox_state(**{"user.email": 7}), "projects[0].users[0].email should be a"),
        (_sandbox_state(**{"list.id": 1000001.5}), "projects[0].lists[0].id should be"),
        (_sandbox_state(**{"list.id": 1000002}), "lists[0].id should be below nextListId"),
        (_sandbox_state(**{"list.members": ["0"]}), "projects[0].lists[0].members[0]"),
        (_sandbox_state(projectType="Hybrid"), "projects[0].projectType should be one of"),
        (_sandbox_state(nextListId="1000002"), "nextListId should be a non-negative"),
        (_sandbox_state(fieldTypes={"tier": 1}), "projects[0].fieldTypes['tier']"),
        (_sandbox_state(campaigns=[{"id": "1"}]), "projects[0].campaigns[0].id"),
        (_sandbox_state(unsubscribeEvents=[{}]), "unsubscribeEvents[0].createdAt is missing"),
    ],
    ids=[
        "no-identifier",
        "name-not-a-string",
        "year-past-9999",
        "date-a-string",
        "email-a-number",
        "list-id-a-fraction",
        "list-id-not-yet-given",
        "member-a-string",
        "project-type-unknown",
        "next-list-id-a-string",
        "field-type-a-number",
        "campaign-id-a-string",
        "event-without-date",
    ],
)
def test_a_sandbox_file_with_a_wrong_value_is_damaged_naming_it(content: str, named: str) -> None:
    with repo() as root:
        (root / "manifests" / "aud.yaml").write_text(audience({"inline": ["a@b.co"]}))
        state = root / "state"
        state.mkdir()
        (state / "sandbox.json").write_text(content)
        result = CliRunner().invoke(
            app, ["plan", str(root / "manifests"), "--state-dir", str(state)]
        )
        output = " ".join((result.stdout + result.stderr).split())
        assert result.exit_code == 1, output
        assert "internal error" not in output and "Traceback" not in output
        assert "the sandbox state file" in output and "is damaged (" in output, output
        assert named in output and "delete it" in output, output
        assert "a@b.co" not in output


def test_a_sandbox_file_as_saved_is_read_back() -> None:
    """The state the damaged-file cases change, unchanged, is read and planned against."""
    with repo() as root:
        (root / "manifests" / "aud.yaml").write_text(audience({"inline": ["a@b.co"]}))
        state = root / "state"
        state.mkdir()
        (state / "sandbox.json").write_text(_sandbox_state())
        result = CliRunner().invoke(
            app, ["plan", str(root / "manifests"), "--state-dir", str(state)]
        )
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "aud (list 1000001): no changes (1 member)" in result.stdout


def test_running_out_of_memory_is_not_reported_as_a_bug(monkeypatch, capsys) -> None:
    import reconciler.cli as cli

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    # MemoryError cannot be provoked safely on a shared machine: the loader raises it here.
    monkeypatch.setattr("reconciler.validation.load_manifests", exhausted)
    monkeypatch.setattr("sys.argv", ["reconciler", "validate", "manifests"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "RECONCILER_MEMORY_LIMIT" in err
    assert "bug" not in err


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_member_file_path_written_from_the_top_or_mistyped_says_what_to_write(kind) -> None:
    """`csv: manifests/data/x.csv` in manifests/ (a path from the repository's top, as a
    shell takes it) said only "CSV file not found: manifests/manifests/data/x.csv", and a
    name a letter off only that it was not found: the user compared paths by eye."""
    with repo() as root:
        (root / "manifests" / "data").mkdir()
        (root / "manifests" / "data" / f"vip_members.{kind}").write_text("email\n")
        for written, said in (
            (
                f"manifests/data/vip_members.{kind}",
                f"(a path in a manifest starts at the manifest's directory, {root}/manifests/: "
                f"write data/vip_members.{kind} for the file manifests/data/vip_members.{kind})",
            ),
            (f"data/vip_member.{kind}", f"(did you mean data/vip_members.{kind}?)"),
            # One folder off: the file is in data/ beside the manifest.
            (f"vip_members.{kind}", f"(did you mean data/vip_members.{kind}?)"),
            (f"data/other.{kind}", None),
        ):
            (root / "manifests" / "aud.yaml").write_text(audience({kind: written}))
            code, output = validate(root / "manifests")
            assert_clear(code, output)
            shown = " ".join(output.split())
            assert code == 1 and "file not found" in shown, shown
            if said is None:
                assert "(did you mean" not in shown and "starts at" not in shown, shown
            else:
                assert said in shown, shown
