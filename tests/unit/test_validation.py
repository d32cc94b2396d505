"""What `validate` checks (reconciler/validation.py), called directly on manifests written
to a temporary directory: counts, problems, warnings and the lines the command prints. The
command itself (cli/validate.py) only prints this result and exits with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import ManifestError, SourceError
from reconciler.members.engine import Engine, EngineSettings
from reconciler.render.masking import mask_emails, quoted, reveal, shower
from reconciler.validation import Validation, validate

DESTINATION = {
    "apiVersion": "reconciler/v1",
    "kind": "Destination",
    "metadata": {"name": "prod"},
    "spec": {"region": "sandbox", "projectType": "hybrid"},
}
MAPPING = {
    "apiVersion": "reconciler/v1",
    "kind": "TraitMapping",
    "metadata": {"name": "crm"},
    "spec": {"fields": {"lifetimeValue": {"from": "value", "type": "number"}}},
}
HEADER = "email,user_id,value"


def audience(name: str, members: object, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Audience",
        "metadata": {"name": name},
        "spec": {"destination": "prod", "members": members, **spec},
    }


def write(root: Path, *docs: dict[str, object], csv: dict[str, str] | None = None) -> Path:
    """Manifests in one YAML file (JSON is YAML) beside their CSV files."""
    (root / "manifests.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    for name, text in (csv or {}).items():
        (root / name).write_text(text)
    return root


def test_clean_manifests_count_what_they_hold(tmp_path: Path) -> None:
    rows = ["a@example.com,u-1,1", "a@example.com,u-1,1", "b@example.com,u-2,2"]
    root = write(
        tmp_path,
        DESTINATION,
        MAPPING,
        audience("csv", {"csv": "m.csv", "email": "email", "userId": "user_id"}, traits="crm"),
        audience("inline", {"inline": ["c@example.com", "d@example.com", "e@example.com"]}),
        csv={"m.csv": "\n".join([HEADER, *rows]) + "\n"},
    )
    found = validate(root)
    assert found.ok
    assert (found.destinations, found.audiences, found.files) == (1, 2, 1)
    assert (found.members, found.duplicates) == (5, 1)
    assert found.lines(str) == []
    assert found.describe() == (
        "OK: 1 destination, 2 audiences, 5 members (1 duplicate row collapsed) in 1 manifest file."
    )


def test_every_problem_is_found_at_once_and_located(tmp_path: Path) -> None:
    """A source that cannot be read does not hide the others' invalid members and values."""
    root = write(
        tmp_path,
        DESTINATION,
        MAPPING,
        audience("unreadable", {"csv": "bad.csv"}),
        audience("mapped", {"csv": "m.csv", "email": "email", "userId": "user_id"}, traits="crm"),
        audience("inline", {"inline": [{"email": "x@@example.com"}, "ok@example.com"]}),
        csv={
            "bad.csv": "email\n",
            "m.csv": f"{HEADER}\na@example.com,u-1,lots\nb@example.com,u-2,3\n",
        },
    )
    (root / "bad.csv").write_bytes(b"\xff\xfe\x00not text")
    found = validate(root)
    assert not found.ok
    assert [type(e) for e in found.unreadable] == [SourceError]
    assert "bad.csv" in str(found.unreadable[0])
    assert (len(found.invalid), len(found.values), found.unlisted) == (1, 1, 0)
    invalid, value = found.lines(quoted(shower(False)))
    assert invalid.startswith(f"{root / 'manifests.yaml'}:") and "invalid email" in invalid
    assert "x@@example.com" not in invalid  # masked unless --show-members
    assert value.startswith(f"{root / 'm.csv'}:2: field 'lifetimeValue'")
    assert "is not a number" in value
    assert found.count_problems() == (
        "1 source that cannot be read, 1 invalid member, 1 value that cannot be sent found."
    )


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
def test_conflicting_duplicates_are_warnings_not_problems(tmp_path: Path, engine_name: str) -> None:
    """On both paths: an audience planned in DuckDB learns its duplicates in plan from the
    join with its list, which validate does not read; validate counts them itself."""
    rows = ["a@example.com,u-1,1", "other@example.com,u-1,1", "b@example.com,u-2,1"]
    root = write(
        tmp_path,
        DESTINATION,
        audience("csv", {"csv": "m.csv", "email": "email", "userId": "user_id"}),
        csv={"m.csv": "\n".join([HEADER, *rows]) + "\n"},
    )
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
    assert found.ok and found.duplicates == 1 and found.members == 2
    (warning,) = found.lines(str)
    assert warning.startswith(f"warning: {root / 'm.csv'}:3: same userId as")
    assert "(1 duplicate row collapsed)" in found.describe()


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
@pytest.mark.parametrize(
    ("header", "says"),
    [
        # Excel in many locales saves semicolons: not "a missing header row", as it read
        ("email;user_id", "separated by semicolons: a CSV source is comma-separated"),
        ("email\tuser_id", "separated by tabs: a CSV source is comma-separated"),
        # the columns are there, spelled otherwise: say which manifest keys name them
        (
            "Email,user_id",
            "name the identifier columns under members: email: Email, userId: user_id",
        ),
        ("E-mail Address,plan", "name the identifier columns under members: email: E-mail Address"),
        # Excel's separator line above the header, and a blank first line: not "member
        # data" without a header row, nor "columns are: (none)" with nothing to go on
        ("sep=,\nemail,user_id", "columns are: sep=, (the first line is Excel's `sep=` line"),
        ("\nemail,user_id", "columns are: (none: the first line, where the header row goes"),
        # what does not show: `email` was said missing from a header that showed it
        (
            "email\u200b,user_id",
            "columns are: email<U+200B>, user_id (the names hold <U+200B>, a zero width "
            "space, where it does not show: remove it)",
        ),
        (
            "user_id,\ufeffemail",
            "columns are: user_id, <U+FEFF>email (the names hold <U+FEFF>, a byte-order mark, "
            "where it does not show: remove it)",
        ),
    ],
)
def test_a_header_without_the_identifier_columns_says_what_to_do(
    tmp_path: Path, engine_name: str, header: str, says: str
) -> None:
    root = write(
        tmp_path,
        DESTINATION,
        audience("csv", {"csv": "m.csv"}),
        csv={"m.csv": f"{header}\na@example.com,u-1\n"},
    )
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
    (error,) = found.unreadable
    assert str(error).startswith(f"{root / 'manifests.yaml'}:")
    assert "has neither an 'email' nor a 'userId' column" in str(error)
    assert says in str(error)
    assert "lack a header row" not in str(error)


@pytest.mark.parametrize("source", ["parquet", "query"])
def test_a_query_column_holding_what_does_not_show_is_spelled_out_as_a_files_is(
    tmp_path: Path, source: str
) -> None:
    """A query's column `Email` and a zero-width space (a table loaded from a pasted header)
    was masked as a name the database made (`E***`), with advice to name the columns the
    query leaves unnamed; a Parquet file's was spelled out and said, as now the query's."""
    import duckdb

    select = "SELECT 'a@example.com' AS \"Email\u200b\", 'gold' AS plan"
    with duckdb.connect() as connection:
        connection.execute(f"COPY ({select}) TO '{tmp_path / 'm.parquet'}' (FORMAT parquet)")
    query = {"sql": select, "database": ":memory:"}
    members = {"parquet": "m.parquet"} if source == "parquet" else query
    root = write(tmp_path, DESTINATION, audience("vip", members))
    (error,) = validate(root).unreadable
    assert str(error).endswith(
        "has neither an 'email' nor a 'userId' column; columns are: Email<U+200B>, plan (the "
        "names hold <U+200B>, a zero width space, where it does not show: remove it)"
    )


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
def test_a_named_column_missing_for_what_does_not_show_says_what_is_there(
    tmp_path: Path, engine_name: str
) -> None:
    root = write(
        tmp_path,
        DESTINATION,
        audience("csv", {"csv": "m.csv", "email": "email"}),
        csv={"m.csv": "email\u200b,first\u00a0name\na@example.com,Ann\n"},
    )
    with Engine(EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)) as engine:
        (error,) = validate(root, engine=engine).unreadable
    assert str(error).endswith(
        f"column 'email' is not in the header of {root / 'm.csv'}; columns are: email<U+200B>, "
        "first<U+00A0>name (the names hold <U+00A0>, a no-break space, and <U+200B>, a zero "
        "width space, where they do not show: remove them)"
    )


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_file_not_comma_separated_is_named_so_when_the_manifest_names_its_columns(
    tmp_path: Path, engine_name: str, separator: str
) -> None:
    """An audience that names its columns (`email: email`) or maps traits was told the
    semicolon file's header "looks like member data: does the source lack a header
    row?" (and the header masked), which sent its reader to the wrong fix."""
    header = separator.join(["email", "user_id", "value"])
    root = write(
        tmp_path,
        DESTINATION,
        audience("named", {"csv": "m.csv", "email": "email", "userId": "user_id"}),
        csv={"m.csv": f"{header}\na@example.com{separator}u-1{separator}1\n"},
    )
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
    (error,) = found.unreadable
    called = "semicolons" if separator == ";" else "tabs"
    assert f"columns are: {header} (its header reads as one column because the file is " in (
        str(error)
    )
    assert f"separated by {called}: a CSV source is comma-separated" in str(error)
    assert "lack a header row" not in str(error)

    write(
        tmp_path,
        DESTINATION,
        MAPPING,
        audience("mapped", {"csv": "m.csv"}, traits="crm"),
    )
    with pytest.raises(ManifestError) as raised:
        validate(root)
    (problem,) = raised.value.problems
    assert f"separated by {called}: a CSV source is comma-separated" in str(problem)
    assert "lack a header row" not in str(problem)


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
def test_a_first_row_of_member_values_that_look_like_column_names_is_masked(
    tmp_path: Path, engine_name: str
) -> None:
    """A CSV without a header row whose first member reads like column names (a userId
    `jsmith`, a plan `gold`) printed them as the file's columns ("columns are: jsmith,
    gold"), in CI logs and annotations: names none of which the manifests read nor heads
    identifiers are now masked, and the message asks about the header row."""
    rows = "jsmith,gold\nadoe,silver\n"
    plan_mapping = {**MAPPING, "spec": {"fields": {"planTier": "plan"}}}
    root = write(
        tmp_path,
        DESTINATION,
        plan_mapping,
        audience("a", {"csv": "m.csv"}, traits="crm"),
        csv={"m.csv": rows},
    )
    with pytest.raises(ManifestError) as raised:
        validate(root)
    (problem,) = raised.value.problems
    unreadable = write(tmp_path, DESTINATION, audience("a", {"csv": "m.csv"}))
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        (error,) = validate(unreadable, engine=engine).unreadable
    for said, wrong in ((str(problem), "column 'plan' is not in"), (str(error), "neither")):
        shown = mask_emails(said)
        assert "jsmith" not in shown and "gold" not in shown, shown
        assert wrong in shown and "columns are: j***, g*** (2 names," in shown
        assert "does the file lack a header row?" in shown
        assert "jsmith, gold" in reveal(said, True)  # --show-members

    # A header with a column the manifests read, or one heading identifiers, is shown.
    two = {**MAPPING, "spec": {"fields": {"planTier": "plan", "score": "score"}}}
    for header in ("email,tier", "E-mail Address,tier", "customer,plan"):
        (tmp_path / "m.csv").write_text(f"{header}\na@example.com,gold\n")
        write(tmp_path, DESTINATION, two, audience("a", {"csv": "m.csv"}, traits="crm"))
        with pytest.raises(ManifestError) as raised:
            validate(root)
        assert f"columns are: {header.replace(',', ', ')}" in mask_emails(str(raised.value))


def test_a_large_audience_counts_the_invalid_rows_it_does_not_list(tmp_path: Path) -> None:
    """Audiences planned in DuckDB list their first 1,000 invalid rows; the rest are still
    counted as problems."""
    rows = [f"m{n}@example.com" for n in range(5)] + [f"not-an-email-{n}" for n in range(1_200)]
    root = write(
        tmp_path,
        DESTINATION,
        audience("big", {"csv": "big.csv"}),
        csv={"big.csv": "\n".join(["email", *rows]) + "\n"},
    )
    settings = EngineSettings(engine="duckdb", memory_limit="256MB", threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
        assert not found.ok
        assert found.members == 5
        assert (len(found.invalid), found.unlisted) == (1_000, 200)
        assert found.lines(str)[-1] == "... and 200 more (large audiences list their first 1,000)."
        assert found.count_problems() == "1,200 invalid members found."


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
def test_values_beyond_those_listed_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_name: str
) -> None:
    """An audience lists its first MAX_FIELD_ISSUES values per field that cannot be sent
    (a mistyped `type:` fails every row); the rest are counted as problems, on both paths."""
    from reconciler.traits import values

    monkeypatch.setattr(values, "MAX_FIELD_ISSUES", 3)
    rows = [f"m{n}@example.com,u-{n},lots" for n in range(8)]
    root = write(
        tmp_path,
        DESTINATION,
        MAPPING,
        audience("big", {"csv": "m.csv", "email": "email", "userId": "user_id"}, traits="crm"),
        csv={"m.csv": "\n".join([HEADER, *rows]) + "\n"},
    )
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
    assert not found.ok
    assert (len(found.values), found.values_unlisted) == (3, 5)
    assert found.lines(str)[-1] == (
        "... and 5 more values that cannot be sent (each audience lists its first 3 per field)."
    )
    assert found.count_problems() == "8 values that cannot be sent found."


def test_a_manifest_that_does_not_load_raises_its_located_error(tmp_path: Path) -> None:
    inline = {"inline": ["a@example.com"]}
    root = write(tmp_path, DESTINATION, audience("x", inline, destination="nowhere"))
    with pytest.raises(ManifestError, match=r"manifests\.yaml:\d+"):
        validate(root)


def test_counts_are_worded_for_one_and_many() -> None:
    found = Validation(
        destinations=2,
        audiences=3,
        files=4,
        members=1_234,
        unreadable=(SourceError("a"), SourceError("b")),
        values=(),
    )
    assert not found.ok
    assert found.count_problems() == "2 sources that cannot be read found."
    # Never "destination(s)": the singular for one, the plural else, with separators.
    assert Validation(1, 1, 1, 1_234).describe() == (
        "OK: 1 destination, 1 audience, 1,234 members in 1 manifest file."
    )
    assert Validation(2, 3_000, 4, 1, duplicates=2_500).describe() == (
        "OK: 2 destinations, 3,000 audiences, 1 member (2,500 duplicate rows collapsed) "
        "in 4 manifest files."
    )
    assert (
        Validation(1, 0, 0, 0).describe()
        == "OK: 1 destination, 0 audiences, 0 members in 0 manifest files."
    )


@pytest.mark.parametrize(
    ("project_type", "header", "declared", "said"),
    [
        ("hybrid", "email,user_id", {}, "identified by email alone"),
        ("hybrid", "email,User ID", {}, "identified by email alone"),
        ("userId", "email,user-id", {}, "skipped as having no userId"),
        ("hybrid", "email,user_id", {"userId": "user_id"}, None),
        # A CSV's columns are matched exactly: `USERID` is not the default `userId`.
        ("hybrid", "email,USERID", {}, "identified by email alone"),
        ("userId", "email,userid", {}, "skipped as having no userId"),
        ("hybrid", "email,user_id_hash", {}, None),
        ("email", "email,user_id", {}, None),
    ],
)
def test_a_userid_column_the_source_does_not_use_is_warned_of_at_its_line(
    tmp_path: Path,
    project_type: str,
    header: str,
    declared: dict[str, str],
    said: str | None,
) -> None:
    destination = {**DESTINATION, "spec": {**DESTINATION["spec"], "projectType": project_type}}  # type: ignore[dict-item]
    root = write(
        tmp_path,
        destination,
        audience("vip", {"csv": "vip.csv", **declared}),
        csv={"vip.csv": f"{header}\na@example.com,u-1\n"},
    )
    found = validate(root)
    lines = found.lines(quoted(shower(False)))
    if said is None:
        assert found.manifest_warnings == ()
        assert not [line for line in lines if "extra column" in line]
        return
    (warning,) = found.manifest_warnings
    column = header.split(",")[1]
    # The audience is the second document (line 3), its `csv:` well into the line.
    assert warning.file.endswith("manifests.yaml") and (warning.line, warning.column > 1) == (
        3,
        True,
    )
    assert f"vip.csv has a column {column!r} but none named 'userId'" in warning.message
    assert said in warning.message and f"set `userId: {column}` under members" in warning.message
    assert f"warning: {warning}" in lines


@pytest.mark.parametrize(
    ("project_type", "header", "key"),
    [("userId", "email,plan", "userId"), ("email", "userId,plan", "email")],
)
def test_a_source_without_the_projects_identifier_column_is_warned_of_at_its_line(
    tmp_path: Path, project_type: str, header: str, key: str
) -> None:
    """In a userID-based project a file of emails alone (or in an email-based one, of
    userIds alone) has every row skipped: one warning at the `csv:` line says why, besides
    a problem per row."""
    destination = {**DESTINATION, "spec": {**DESTINATION["spec"], "projectType": project_type}}  # type: ignore[dict-item]
    root = write(
        tmp_path,
        destination,
        audience("vip", {"csv": "vip.csv"}),
        csv={"vip.csv": f"{header}\na@example.com,gold\nb@example.com,silver\n"},
    )
    found = validate(root)
    (warning,) = found.manifest_warnings
    assert (warning.line, warning.column > 1) == (3, True)
    assert warning.message == (
        f"members.csv: vip.csv has no column named {key!r}, and {project_type} projects "
        f"identify users by {key}, so every row is skipped; set `{key}: COLUMN` under "
        "members to name the column that holds them"
    )


def test_a_key_column_with_a_character_that_does_not_show_is_named_in_the_warning(
    tmp_path: Path,
) -> None:
    """An email-based project's file headed `email` and a zero-width space: the warning said
    it has no column named 'email', which the user's editor showed it to have."""
    destination = {**DESTINATION, "spec": {**DESTINATION["spec"], "projectType": "email"}}  # type: ignore[dict-item]
    root = write(
        tmp_path,
        destination,
        audience("vip", {"csv": "vip.csv"}),
        csv={"vip.csv": "email\u200b,userId\na@example.com,u-1\n"},
    )
    (warning,) = validate(root).manifest_warnings
    assert warning.message == (
        "members.csv: vip.csv has no column named 'email', and email projects identify users "
        "by email, so every row is skipped; its column 'email<U+200B>' is not it: the names "
        "hold <U+200B>, a zero width space, where it does not show: remove it"
    )


@pytest.mark.parametrize("header", ["Email\u200b", "email\u200b"])
def test_a_parquet_key_column_with_a_character_that_does_not_show_is_named_too(
    tmp_path: Path, header: str
) -> None:
    """The same in a Parquet file, whose names are matched case aside: `Email` and a
    zero-width space got the advice to name a column under members, as if none showed."""
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT 'a@example.com' AS \"{header}\", 'u-1' AS userId) TO "
            f"'{tmp_path / 'vip.parquet'}' (FORMAT parquet)"
        )
    destination = {**DESTINATION, "spec": {**DESTINATION["spec"], "projectType": "email"}}  # type: ignore[dict-item]
    root = write(tmp_path, destination, audience("vip", {"parquet": "vip.parquet"}))
    (warning,) = validate(root).manifest_warnings
    assert warning.message.endswith(
        f"so every row is skipped; its column '{header[:5]}<U+200B>' is not it: the names "
        "hold <U+200B>, a zero width space, where it does not show: remove it"
    )


@pytest.mark.parametrize("project_type", ["userId", "email"])
def test_a_source_without_either_identifier_column_is_one_error_without_the_warning(
    tmp_path: Path, project_type: str
) -> None:
    """A CSV headed `Email` (no column `email` nor `userId`) cannot be read, which its error
    says; the warning beside it, that "every row is skipped", said the opposite of what
    happens (no row is read at all) and named only one of the two columns missing."""
    destination = {**DESTINATION, "spec": {**DESTINATION["spec"], "projectType": project_type}}  # type: ignore[dict-item]
    root = write(
        tmp_path,
        destination,
        audience("vip", {"csv": "vip.csv"}),
        csv={"vip.csv": "Email,plan\na@example.com,gold\n"},
    )
    found = validate(root)
    assert found.manifest_warnings == ()
    (unreadable,) = found.unreadable
    assert "has neither an 'email' nor a 'userId' column" in str(unreadable)


def test_a_parquet_column_named_userid_in_another_case_is_the_userid(tmp_path: Path) -> None:
    """Parquet and query columns are matched case aside (PostgreSQL folds `AS userId` to
    `userid`), so such a column is used, and no warning says otherwise."""
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT 'a@example.com' AS email, 'u-1' AS USERID) TO "
            f"'{tmp_path / 'vip.parquet'}' (FORMAT parquet)"
        )
    destination = {**DESTINATION, "spec": {**DESTINATION["spec"], "projectType": "userId"}}  # type: ignore[dict-item]
    root = write(tmp_path, destination, audience("vip", {"parquet": "vip.parquet"}))
    found = validate(root)
    assert found.manifest_warnings == ()
    assert found.ok and found.members == 1


def test_the_userid_warning_glances_at_the_header_without_copying_the_file(
    tmp_path: Path,
) -> None:
    """Loading warns from the first line alone: the copy a read makes is not taken for a
    source this run may never read (`plan --target` another audience)."""
    from reconciler.manifest import load_manifests
    from reconciler.sources.registry import source_for

    root = write(
        tmp_path,
        DESTINATION,
        audience("vip", {"csv": "vip.csv"}),
        csv={"vip.csv": "email,user_id\n" + "a@example.com,u-1\n" * 10},
    )
    manifests = load_manifests(root)
    assert [w.message.split(":")[0] for w in manifests.warnings] == ["members.csv"]
    assert "snapshot" not in vars(source_for(manifests.audiences["vip"]))


def test_a_parquet_file_with_a_userid_lookalike_is_warned_of_too(tmp_path: Path) -> None:
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT 'a@example.com' AS email, 'u-1' AS user_id) TO "
            f"'{tmp_path / 'vip.parquet'}' (FORMAT parquet)"
        )
    root = write(tmp_path, DESTINATION, audience("vip", {"parquet": "vip.parquet"}))
    (warning,) = validate(root).manifest_warnings
    assert warning.message.startswith(
        "members.parquet: vip.parquet has a column 'user_id' but none named 'userId', so its "
        "members are identified by email alone in this hybrid project"
    )


def test_the_parquet_glance_reads_the_file_checked_not_one_dot_dot_folds_to(
    tmp_path: Path,
) -> None:
    """`link/../../x.parquet` is inside the repository as the file system follows the
    link, outside it were the text folded: the glance (DuckDB, unrestricted) must read the
    file the loader checked, as the file system resolves it."""
    import subprocess

    import duckdb

    repo = tmp_path / "repo"
    (repo / "a" / "b").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "link").symlink_to(repo / "a" / "b")
    with duckdb.connect() as connection:
        for path, column in ((repo / "x.parquet", "plan"), (tmp_path / "x.parquet", "user_id")):
            connection.execute(
                f"COPY (SELECT 'a@example.com' AS email, 'u-1' AS {column}) TO '{path}' "
                "(FORMAT parquet)"
            )
    write(repo, DESTINATION, audience("vip", {"parquet": "link/../../x.parquet"}))
    found = validate(repo)
    assert found.members == 1  # the repository's file: read, and no userId lookalike in it
    assert found.manifest_warnings == ()


@pytest.mark.parametrize(
    ("project_type", "header", "declared", "warned"),
    [
        ("hybrid", "Email,userId", {}, True),
        ("hybrid", "E-mail Address,userId", {}, True),
        ("hybrid", "EMAIL,userId", {}, True),
        ("hybrid", "Email,userId", {"email": "Email"}, False),
        ("hybrid", "email,userId", {}, False),
        # No userId column: the read refuses the file, naming its columns.
        ("hybrid", "Email,plan", {}, False),
        # A userID-based project never sends the email; an email-based one warns that
        # every row is skipped.
        ("userId", "Email,userId", {}, False),
        ("hybrid", "email_hash,userId", {}, False),
    ],
)
def test_an_email_column_the_source_does_not_use_is_warned_of_at_its_line(
    tmp_path: Path,
    project_type: str,
    header: str,
    declared: dict[str, str],
    warned: bool,
) -> None:
    """A hybrid project's file headed `Email` and `userId`: its members were identified by
    userId alone, their emails never sent (a new profile made without one), and nothing
    said so."""
    destination = {**DESTINATION, "spec": {**DESTINATION["spec"], "projectType": project_type}}  # type: ignore[dict-item]
    root = write(
        tmp_path,
        destination,
        audience("vip", {"csv": "vip.csv", **declared}),
        csv={"vip.csv": f"{header}\na@example.com,u-1\n"},
    )
    found = validate(root)
    lines = found.lines(quoted(shower(False)))
    if not warned:
        assert not [w for w in found.manifest_warnings if "their emails" in w.message]
        return
    (warning,) = found.manifest_warnings
    column = header.split(",")[0]
    assert (warning.line, warning.column > 1) == (3, True)
    assert warning.message == (
        f"members.csv: vip.csv has a column {column!r} but none named 'email', so its "
        "members are identified by userId alone in this hybrid project, their emails never "
        f"sent, and {column!r} is only an extra column; set `email: {column}` under members "
        "to send them"
    )
    assert f"warning: {warning}" in lines


def test_an_email_column_with_a_character_that_does_not_show_is_warned_of(
    tmp_path: Path,
) -> None:
    """A hybrid project's file headed `email` and a zero-width space (pasted from a web
    page) beside `userId` validated OK: the column is not `email`, so every member went by
    userId alone and no email was sent, while the header looked right in any editor."""
    root = write(
        tmp_path,
        DESTINATION,
        audience("vip", {"csv": "vip.csv"}),
        csv={"vip.csv": "email\u200b,userId\na@example.com,u-1\n"},
    )
    found = validate(root)
    (warning,) = found.manifest_warnings
    assert warning.message == (
        "members.csv: vip.csv has a column 'email<U+200B>' but none named 'email', so its "
        "members are identified by userId alone in this hybrid project, their emails never "
        "sent, and 'email<U+200B>' is only an extra column; the names hold <U+200B>, a zero "
        "width space, where it does not show: remove it"
    )
    assert "\u200b" not in warning.message


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
def test_a_file_two_audiences_read_has_each_bad_row_said_and_counted_once(
    tmp_path: Path, engine_name: str
) -> None:
    """One list kept in two Iterable projects (a sandbox's and production's) is two
    audiences reading one CSV: each bad row was printed twice, word for word, and counted
    twice ('2 invalid members' for one row to fix), and in CI took two of GitHub's ten
    annotations."""
    sandbox = {**DESTINATION, "metadata": {"name": "sandbox"}}
    rows = ["not-an-email,u-1,1", "b@example.com,u-2,lots", "c@example.com,u-3,3"]
    rows.append("c@example.com,u-3,4")  # a duplicate that disagrees: a warning
    columns = {"csv": "m.csv", "email": "email", "userId": "user_id"}
    root = write(
        tmp_path,
        DESTINATION,
        sandbox,
        MAPPING,
        audience("vip", columns, traits="crm"),
        audience("vip-sandbox", columns, traits="crm", destination="sandbox"),
        csv={"m.csv": "\n".join([HEADER, *rows]) + "\n"},
    )
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
    lines = found.lines(quoted(shower(False)))
    assert len(lines) == 3, lines
    assert [line.removeprefix("warning: ").split(": ", 1)[0] for line in lines] == [
        f"{root / 'm.csv'}:2",
        f"{root / 'm.csv'}:3",
        f"{root / 'm.csv'}:5",
    ]
    assert lines[2].startswith("warning: ")
    assert found.count_problems() == "1 invalid member, 1 value that cannot be sent found."
    assert found.members == 4  # each audience's own: two members in each


def test_rows_beyond_those_listed_are_counted_once_for_audiences_reading_one_file(
    tmp_path: Path,
) -> None:
    """Two audiences over one large file list the same first 1,000 invalid rows, and the
    200 after them are the same rows too: 1,200 to fix, not 1,400 or 2,400."""
    rows = [f"m{n}@example.com" for n in range(5)] + [f"not-an-email-{n}" for n in range(1_200)]
    sandbox = {**DESTINATION, "metadata": {"name": "sandbox"}}
    root = write(
        tmp_path,
        DESTINATION,
        sandbox,
        audience("big", {"csv": "big.csv"}),
        audience("big-sandbox", {"csv": "big.csv"}, destination="sandbox"),
        csv={"big.csv": "\n".join(["email", *rows]) + "\n"},
    )
    settings = EngineSettings(engine="duckdb", memory_limit="256MB", threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
        assert (len(found.invalid), found.unlisted) == (1_000, 200)
        assert found.count_problems() == "1,200 invalid members found."


@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
def test_a_value_error_on_every_row_is_listed_a_few_times_and_the_rest_counted(
    tmp_path: Path, engine_name: str
) -> None:
    """A template failing on every row printed one line per row (500 rows: 500 lines in a
    pre-commit or CI log); each file and error now lists its first rows and counts the
    rest on one line, while another error in the same rows is still listed."""
    from reconciler.validation import SAME_ERROR_SHOWN

    mapping = {
        **MAPPING,
        "spec": {
            "fields": {
                "ratio": {"template": "{{ 1/0 }}"},
                "lifetimeValue": {"from": "value", "type": "number"},
            }
        },
    }
    # Every row fails 'ratio'; rows 2 and 4 of the file (different values) fail 'lifetimeValue'.
    values = ["lots", "1", "many"] + [str(n) for n in range(20)]
    rows = [f"m{n}@example.com,u-{n},{value}" for n, value in enumerate(values)]
    root = write(
        tmp_path,
        DESTINATION,
        mapping,
        audience("big", {"csv": "m.csv", "email": "email", "userId": "user_id"}, traits="crm"),
        csv={"m.csv": "\n".join([HEADER, *rows]) + "\n"},
    )
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
    lines = found.lines(quoted(shower(False)))
    ratio = [line for line in lines if "field 'ratio'" in line]
    assert len(ratio) == SAME_ERROR_SHOWN, lines
    numbers = [line for line in lines if "is not a number" in line]
    assert len(numbers) == 2, lines  # 'lots' and 'many': one error, both rows listed
    csv = root / "m.csv"
    more = len(values) - SAME_ERROR_SHOWN
    assert lines[-1] == f"{csv}: ... and {more} more rows with the same error as {csv}:2"
    assert len(lines) == SAME_ERROR_SHOWN + 2 + 1
    # Every row is still a problem counted.
    assert found.count_problems() == f"{len(values) + 2} values that cannot be sent found."


# Rows of a Parquet file and of a query, as their value issues place them.
ROWS_OF = {
    "parquet": ({"parquet": "m.parquet"}, ":row {n}"),
    "query": (
        {"sql": "SELECT 'm' || i || '@example.com' AS email, i AS value FROM range(12) t(i)"},
        ": query row {n}",
    ),
}


@pytest.mark.parametrize("source", sorted(ROWS_OF))
@pytest.mark.parametrize("engine_name", ["python", "duckdb"])
def test_a_value_error_on_every_row_of_a_parquet_file_or_a_query_is_counted_too(
    tmp_path: Path, engine_name: str, source: str
) -> None:
    """The rows of a Parquet file (`m.parquet:row 7`) and of a query (`...: query row 7`)
    were each taken for a file of their own, so a template failing on every row still
    printed one line per row there; they are grouped as a CSV file's rows are."""
    import duckdb

    from reconciler.validation import SAME_ERROR_SHOWN

    duckdb.sql(
        "COPY (SELECT 'm' || i || '@example.com' AS email, i AS value FROM range(12) t(i)) "
        f"TO '{tmp_path / 'm.parquet'}' (FORMAT parquet)"
    )
    mapping = {**MAPPING, "spec": {"fields": {"ratio": {"template": "{{ value / 0 }}"}}}}
    members, row = ROWS_OF[source]
    if source == "query":
        members = {**members, "database": ":memory:"}
    root = write(tmp_path, DESTINATION, mapping, audience("big", members, traits="crm"))
    settings = EngineSettings(engine=engine_name, threads=1, temp_dir=tmp_path)
    with Engine(settings) as engine:
        found = validate(root, engine=engine)
    lines = found.lines(quoted(shower(False)))
    assert len(lines) == SAME_ERROR_SHOWN + 1, lines
    first = lines[0].split(": field 'ratio'")[0]
    assert first.endswith(row.format(n=1)), lines
    file = first.removesuffix(row.format(n=1))
    assert file.startswith(str(root)), lines
    more = 12 - SAME_ERROR_SHOWN
    assert lines[-1] == f"{file}: ... and {more} more rows with the same error as {first}"
    assert found.count_problems() == "12 values that cannot be sent found."
