"""Saved plans in CI (plan on the pull request, `apply --plan` on merge): what is applied is
what the reviewed plan said, or nothing."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from reconciler.leftovers import IDLE_SECONDS
from reconciler.plan.fingerprint import FIELDS_KEY
from tests.apply.limits import file_size_limit
from tests.integration.test_safety import list_named, project, seed_list, writes
from tests.unit.test_plan_core import with_checksum, wrong_shapes

QUERY = "SELECT email FROM read_csv('data/q.csv')"


def query_audience(workspace, rows: list[str]) -> None:
    workspace.csv("data/q.csv", "email", rows)
    workspace.audience("q", {"sql": QUERY, "database": ":memory:", "email": "email"})


@pytest.mark.parametrize(
    ("plan_engine", "apply_engine"),
    [("python", "python"), ("duckdb", "duckdb"), ("python", "duckdb"), ("duckdb", "python")],
)
def test_a_file_a_query_reads_is_part_of_the_saved_plans_digest(
    workspace, cli, emulator_server, tmp_path, monkeypatch, plan_engine, apply_engine
):
    """The query's own files, not only its `database:`: a CSV the query reads, changed
    between plan and apply, made apply add the reviewed plan's members, whom the source
    no longer holds."""
    query_audience(workspace, ["a@example.com", "b@example.com"])
    planfile = tmp_path / "q.plan"
    monkeypatch.setenv("RECONCILER_ENGINE", plan_engine)
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0

    monkeypatch.setenv("RECONCILER_ENGINE", apply_engine)
    query_audience(workspace, ["a@example.com", "c@example.com"])
    refused = cli("apply", "--plan", planfile, "--yes")
    assert refused.exit_code == 4, refused.output
    assert "manifests or their member sources changed" in refused.stderr
    assert "(manifests/data/q.csv changed)" in refused.stderr  # which one, from here
    assert writes(emulator_server) == []

    # Back as it was reviewed, the plan applies (under either engine: they digest alike).
    query_audience(workspace, ["a@example.com", "b@example.com"])
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 0, applied.output
    assert sorted(project(emulator_server).members(list_named(emulator_server, "q").id)) == [
        "a@example.com",
        "b@example.com",
    ]


@pytest.mark.field_profile
def test_a_campaign_started_after_the_plan_was_saved_blocks_its_adds(
    workspace, cli, emulator_server, tmp_path
):
    """activeCampaignAdds: block judges the campaigns as they are when the adds are sent.
    The reviewed plan read none running; one started while the plan waited for approval
    messages the added members at once, which the policy exists to stop."""
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.destination(policy={"activeCampaignAdds": "block"})
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    welcome = project(emulator_server).add_campaign(
        "Welcome", campaign_type="Triggered", state="Running", list_ids=[list_id]
    )
    emulator_server.emulator.clear_log()

    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 3, result.output
    assert f"campaign 'Welcome' (id {welcome})" in result.stderr
    assert writes(emulator_server) == []
    assert project(emulator_server).members(list_id) == ["a@example.com"]


def test_a_plan_stale_by_a_list_made_by_hand_says_why(workspace, cli, emulator_server, tmp_path):
    """A second list of the audience's name, made in Iterable while the plan waited for
    review, leaves the audience out of the plan the stale check makes: the refusal says
    so, not only that the list "was not in both plans"."""
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    extra = seed_list(emulator_server, "vip", [])
    emulator_server.emulator.clear_log()

    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 4, result.output
    assert (
        "Left out of a plan made now: vip: Iterable has 2 lists named 'vip' "
        f"(ids {list_id}, {extra})"
    ) in " ".join(result.stderr.split())
    assert writes(emulator_server) == []


def test_a_plan_edited_by_hand_is_refused_with_zero_writes(
    workspace, cli, emulator_server, tmp_path
):
    seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    edited = gzip.decompress(planfile.read_bytes()).replace(b"b@example.com", b"m@example.com")
    planfile.write_bytes(gzip.compress(edited))
    emulator_server.emulator.clear_log()

    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 1, result.output
    assert "is not the plan that was saved" in result.stderr
    assert writes(emulator_server) == []


def test_a_plan_edited_with_its_checksum_made_again_is_refused_before_anything_is_sent(
    workspace, cli, emulator_server, tmp_path
):
    """Found by fuzzing: the checksum has no key, so an edit can come with a new one, and a
    value of the wrong type or shape in such a file ended apply --plan in an internal error
    (TypeError in the stale check or the renderer). A seeded sample of such edits of a real
    plan (every one is in tests/unit/test_plan_core.py) each ends in the damaged-file error,
    exit 1, with not one request sent."""
    seed_list(emulator_server, "vip", ["a@example.com", "gone@example.com"])
    workspace.destination(policy={"maxRemovalPercent": 100})
    workspace.csv("data/new.csv", "email", ["a@example.com", "b@example.com", "not-an-email"])
    workspace.audience("vip", {"csv": "data/new.csv", "email": "email"})
    workspace.audience("fresh", {"inline": ["c@example.com"]})
    planfile = tmp_path / "vip.plan"
    made = cli("plan", workspace.manifests, "--out", planfile)
    # Exit 1 for the skipped row, which the plan file records too.
    assert made.exit_code == 1 and "Plan saved to" in made.output, made.output
    lines = gzip.decompress(planfile.read_bytes()).splitlines()
    cases = list(wrong_shapes(lines))
    for case, content in random.Random(15).sample(cases, 60):
        planfile.write_bytes(gzip.compress(content))
        emulator_server.emulator.clear_log()
        result = cli("apply", "--plan", planfile, "--yes")
        assert result.exit_code == 1, (case, result.output)
        assert "is not a reconciler plan file (or it is damaged)" in result.stderr, case
        assert "internal error" not in result.output, case
        assert emulator_server.emulator.request_log == [], case


def test_a_targeted_plan_stays_good_when_another_audiences_source_changes(
    workspace, cli, emulator_server, tmp_path
):
    """`plan --target vip --out` plans from vip's source alone: another audience's CSV,
    rewritten before the merge (a nightly export), does not make it stale. Its own does."""
    workspace.csv("data/vip.csv", "email", ["a@example.com"])
    workspace.audience("vip", {"csv": "data/vip.csv"})
    workspace.csv("data/other.csv", "email", ["o@example.com"])
    workspace.audience("other", {"csv": "data/other.csv"})
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--target", "vip", "--out", planfile).exit_code == 0

    workspace.csv("data/vip.csv", "email", ["a@example.com", "b@example.com"])
    refused = cli("apply", "--plan", planfile, "--yes")
    assert refused.exit_code == 4, refused.output
    assert "(manifests/data/vip.csv changed)" in refused.stderr
    assert writes(emulator_server) == []

    workspace.csv("data/vip.csv", "email", ["a@example.com"])
    workspace.csv("data/other.csv", "email", ["o@example.com", "p@example.com"])
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 0, applied.output
    assert project(emulator_server).members(list_named(emulator_server, "vip").id) == [
        "a@example.com"
    ]
    assert [r.name for r in project(emulator_server).lists.values()] == ["vip"]


def test_a_sqlite_database_in_the_repository_is_part_of_the_saved_plans_digest(
    workspace, cli, emulator_server, tmp_path
):
    database = workspace.manifests / "data" / "m.db"
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE people (email TEXT)")
        connection.execute("INSERT INTO people VALUES ('a@example.com'), ('b@example.com')")
    connection.close()
    workspace.audience(
        "q", {"sql": "SELECT email FROM people", "url": "sqlite:///manifests/data/m.db"}
    )
    planfile = tmp_path / "q.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0

    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE people SET email = 'c@example.com' WHERE email LIKE 'b%'")
    connection.close()
    refused = cli("apply", "--plan", planfile, "--yes")
    assert refused.exit_code == 4, refused.output
    assert "(manifests/data/m.db changed)" in refused.stderr
    assert writes(emulator_server) == []


def test_a_targeted_plan_whose_audience_was_removed_is_stale_not_a_usage_error(
    workspace, cli, emulator_server, tmp_path
):
    """The plan's own --target named an audience the manifests no longer declare: apply
    --plan said `--target names unknown audience(s)` (exit 1) to someone who gave none."""
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("other", {"inline": ["o@example.com"]})
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--target", "vip", "--out", planfile).exit_code == 0
    (workspace.manifests / "aud-vip.yaml").unlink()

    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 4, result.output
    assert "stale plan: vip.plan was made for audience vip, no longer in the manifests" in (
        result.stderr
    )
    assert "--target" not in result.stderr
    assert writes(emulator_server) == []


@pytest.mark.field_profile
def test_a_plan_applied_again_says_iterable_already_matches(
    workspace, cli, emulator_server, tmp_path
):
    """A CI job run again applies the same plan a second time: the lists it changed read
    as changed, so the plan is stale (exit 4, nothing sent), and the message says why
    rather than leaving the list 'created since the plan was made' unexplained."""
    workspace.audience("vip", {"inline": ["a@example.com"]})
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    assert cli("apply", "--plan", planfile, "--yes").exit_code == 0
    emulator_server.emulator.clear_log()

    again = cli("apply", "--plan", planfile, "--yes")
    assert again.exit_code == 4, again.output
    assert "stale plan: list 'vip' was created" in again.stderr
    assert "Iterable already matches the manifests (was this plan applied already?)" in (
        again.stderr
    )
    assert writes(emulator_server) == []
    assert [r.name for r in project(emulator_server).lists.values()] == ["vip"]


def test_the_apply_command_plan_suggests_runs_as_printed_from_a_shell(
    workspace, cli, emulator_server, tmp_path
):
    """`Plan saved to ...; apply it with: reconciler apply --plan PATH` printed the path as
    it is, so pasting the command named a file "my" and another "plans/p.plan" when the
    path held a space (a home directory, a runner's workspace)."""
    import shlex

    workspace.audience("spaced", {"inline": ["a@example.com"]})
    planfile = tmp_path / "my plans" / "it's.plan"
    planned = cli("plan", workspace.manifests, "--out", planfile)
    assert planned.exit_code == 0, planned.output
    suggested = planned.stderr.split("apply it with: ", 1)[1].strip()
    words = shlex.split(suggested)
    assert words[:3] == ["reconciler", "apply", "--plan"] and words[3:] == [str(planfile)]
    applied = cli(*words[1:], "--yes")
    assert applied.exit_code == 0, applied.output
    assert project(emulator_server).members(list_named(emulator_server, "spaced").id) == [
        "a@example.com"
    ]


def test_a_saved_plan_goes_through_a_link_and_never_over_a_device_or_a_pipe(
    workspace, cli, emulator_server, tmp_path
):
    """The plan file is written beside its path and renamed over it. Renamed over a link,
    the link became a file and the file it named kept the previous plan; renamed over a
    device (`--out /dev/stdout`, `/dev/full`), run as root as CI containers run, the device
    itself was replaced by a regular file and the command said "Plan saved"."""
    import os
    import stat

    workspace.audience("linked", {"inline": ["a@example.com"]})
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    refused = cli("plan", workspace.manifests, "--out", fifo)
    assert refused.exit_code == 1, refused.output
    assert f"--out {fifo}: is not a regular file" in refused.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)

    real = tmp_path / "plans" / "current.plan"
    real.parent.mkdir()
    real.write_bytes(b"an older plan")
    link = tmp_path / "latest.plan"
    link.symlink_to(real)
    assert cli("plan", workspace.manifests, "--out", link).exit_code == 0
    assert link.is_symlink() and real.read_bytes() != b"an older plan"
    applied = cli("apply", "--plan", link, "--yes")
    assert applied.exit_code == 0, applied.output
    assert project(emulator_server).members(list_named(emulator_server, "linked").id) == [
        "a@example.com"
    ]


# A process writing a saved plan, killed (SIGKILL: the OOM killer, a cancelled job's last
# signal) once the file holds its first batch of members: as one of millions would be,
# minutes into its write.
KILLED_MIDWAY = """
import os, signal, sys
from pathlib import Path
from reconciler.plan import DestinationPlan, Plan
from reconciler.plan.file import save_plan
from tests.apply.support import list_plan, member

class Killing(tuple):
    def __getitem__(self, index):
        if isinstance(index, slice) and index.start:
            os.kill(os.getpid(), signal.SIGKILL)
        return tuple.__getitem__(self, index)

adds = Killing(member(f"m{i}@example.com") for i in range(10_001))
plan = Plan((DestinationPlan("prod", "hybrid", (list_plan("vip", list_id=1, add=adds),)),))
save_plan(Path(sys.argv[1]), plan, "digest", Path("."), None)
"""


def test_what_a_killed_plan_out_left_beside_the_plan_is_removed_by_the_next(
    workspace, cli, tmp_path
):
    """`plan --out plan.gz` killed while writing left a hidden `.plan.gz.<random>` of
    members' identities beside it, in the repository where `git add -A` commits it, for
    good. It is named for its process, and the next `plan --out` to that path removes it
    once that process is gone (and it has been idle an hour, as a container's run sharing
    the directory may look gone too)."""
    out = workspace.root / "plan.gz"
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MIDWAY, str(out)], env=env, cwd=root, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    (left,) = [p for p in workspace.root.iterdir() if p.name.startswith(".plan.gz.")]
    assert left.stat().st_size > 0 and not out.exists()
    # An earlier process that had this process's pid (a container's pid 1) is gone too.
    same_pid = workspace.root / f".plan.gz.partial-{os.getpid()}-abc123"
    workspace.csv("data/a.csv", "email", ["a@example.com"])
    workspace.audience("a", {"csv": "data/a.csv"})
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as writer:
        try:
            running = workspace.root / f".plan.gz.partial-{writer.pid}-abc123"
            then = time.time() - IDLE_SECONDS - 60
            for path in (running, same_pid):
                path.write_bytes(b"")
            for path in (left, running, same_pid):
                os.utime(path, (then, then))
            saved = cli("plan", workspace.manifests, "--out", out)
        finally:
            writer.kill()
    assert saved.exit_code == 0, saved.output
    assert out.exists() and not left.exists() and not same_pid.exists()
    assert running.exists()  # a live process's


def test_what_a_killed_plan_out_of_the_earlier_naming_left_is_removed_too(workspace, cli, tmp_path):
    """Before partial files were named for their process, `plan --out plan.gz` wrote
    `.plan.gz.<8 random characters>` (tempfile.mkstemp's name), and a run of that version
    killed while writing left it: the sweep knew only the new names, so an upgrade kept
    that copy of members' identities beside the plan for good. Such a file is a plan's
    (gzip, or empty when killed before its first byte) and is removed by the idle-hour rule;
    other hidden files of like names are left alone."""
    out = workspace.root / "plan.gz"
    # As 540a71e's save_plan named it, holding the start of a gzip'd plan.
    fd, name = tempfile.mkstemp(dir=workspace.root, prefix=".plan.gz.")
    os.write(fd, gzip.compress(b'{"format": "reconciler-plan", "version": 5}\n')[:40])
    os.close(fd)
    left = Path(name)
    fd, name = tempfile.mkstemp(dir=workspace.root, prefix=".plan.gz.")
    os.close(fd)
    empty = Path(name)
    mine = [workspace.root / ".plan.gz.notes123", workspace.root / ".plan.gz.orig"]
    mine[0].write_text("my notes on the plan\n")
    mine[1].write_bytes(gzip.compress(b"a copy I keep"))
    workspace.audience("a", {"inline": ["a@example.com"]})
    then = time.time() - IDLE_SECONDS - 60
    for path in (left, empty, *mine):
        os.utime(path, (then, then))
    saved = cli("plan", workspace.manifests, "--out", out)
    assert saved.exit_code == 0, saved.output
    assert out.exists() and not left.exists() and not empty.exists()
    assert all(path.exists() for path in mine)


def test_plan_out_on_a_full_disk_says_so_not_a_bug(workspace, cli):
    """`plan --out` on a full disk (a CI runner's) was "internal error: OSError ... This
    is a bug in reconciler"."""
    rng = random.Random(7)
    people = [f"{rng.getrandbits(64):016x}@example.com" for _ in range(3000)]
    workspace.audience("a", {"inline": people})
    out = workspace.root / "plan.gz"
    with file_size_limit(16_000):  # as a full disk refuses a write
        result = cli("plan", workspace.manifests, "--out", out, "--format", "json")
    assert result.exit_code == 1, result.output
    said = f"cannot write the plan to {out}: File too large; no plan was saved"
    assert f"error: {said}" in result.stderr
    assert result.json()["error"] == said
    assert [p.name for p in workspace.root.iterdir() if "plan.gz" in p.name] == []


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize(
    ("name", "decoy"),
    [
        ("#1 plan.gz", "1 plan.gz"),  # a comment unless escaped
        ("!plan.gz", "plan.gz"),  # a negation unless escaped
        ("plan?.gz", "planX.gz"),
        ("plan*.gz", "planX.gz"),
        ("[v1] plan.gz", "v plan.gz"),
        ("back\\slash.gz", "backslash.gz"),
        ("plan.gz ", "plan.gz"),  # git drops a line's unescaped trailing spaces
    ],
)
def test_the_gitignore_line_suggested_ignores_that_file_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, decoy: str
) -> None:
    from reconciler.manifest.repository import git_would_commit, gitignore_pattern

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True, env={})
    plans = tmp_path / "repo" / "plans"
    plans.mkdir()
    (plans / name).write_bytes(b"")
    (plans / decoy).write_bytes(b"")
    assert git_would_commit(plans / name) and git_would_commit(plans / decoy)

    (tmp_path / "repo" / ".gitignore").write_text(gitignore_pattern(name) + "\n")

    assert not git_would_commit(plans / name)
    assert git_would_commit(plans / decoy)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_plan_out_where_git_would_commit_it_warns_once_and_nowhere_else(
    workspace, cli, tmp_path, monkeypatch
):
    """`plan --out plan.gz` in a repository that does not ignore it wrote every member's
    email and userId where `git add -A` commits them, without a word. It is one warning,
    naming the file and a .gitignore line; none when git ignores the file, outside a
    work tree, or without git; and the plan is saved and exits as before in every case."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    # A git hook running reconciler has GIT_DIR set for its own repository.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere" / ".git"))
    workspace.audience("a", {"inline": ["a@example.com"]})
    repository = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repository)], check=True, env={})
    out = repository / "plans" / "[v1] plan.gz"
    out.parent.mkdir()

    planned = cli("plan", workspace.manifests, "--out", out)
    assert planned.exit_code == 0, planned.output
    assert _warnings(planned.stderr) == [
        f"warning: {out} holds members' emails and userIds and is in a git work tree that "
        "does not ignore it, so 'git add -A' would commit it: add \\[v1] plan.gz to "
        ".gitignore, or save the plan outside the repository"
    ]
    # The line it suggests is one git takes.
    (repository / ".gitignore").write_text("\\[v1] plan.gz\n")
    ignored = cli("plan", workspace.manifests, "--out", out)
    assert ignored.exit_code == 0 and _warnings(ignored.stderr) == [], ignored.output

    outside = tmp_path / "elsewhere" / "plan.gz"
    outside.parent.mkdir()
    elsewhere = cli("plan", workspace.manifests, "--out", outside)
    assert elsewhere.exit_code == 0 and _warnings(elsewhere.stderr) == [], elsewhere.output

    monkeypatch.setenv("PATH", str(tmp_path / "no-such-directory"))
    (repository / ".gitignore").unlink()
    without_git = cli("plan", workspace.manifests, "--out", out)
    assert without_git.exit_code == 0 and _warnings(without_git.stderr) == []
    assert out.stat().st_size > 0 and outside.stat().st_size > 0


@pytest.mark.parametrize("reason", ["iterable", "manifests", "target"])
def test_a_stale_plan_names_its_file_masked_and_on_one_line(
    workspace, cli, emulator_server, tmp_path, reason
):
    """A job that applies one of several saved plans (one per destination or per audience)
    was refused with 'stale plan: ...' naming no file, so which plan to make again was a
    guess. The refusal names the file as other plan-file messages do: from the working
    directory, an email in its name masked, a line end in it escaped (a name holding
    '\\n::error::' would otherwise start a workflow command of its own on a runner)."""
    list_id = seed_list(emulator_server, "vip", ["a@example.com"])
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    workspace.audience("other", {"inline": ["o@example.com"]})
    (tmp_path / "plans").mkdir()
    planfile = tmp_path / "plans" / "for-ann@example.com\n::error::forged.plan"
    targets = ["--target", "vip"] if reason == "target" else []
    assert cli("plan", workspace.manifests, *targets, "--out", planfile).exit_code == 0
    if reason == "iterable":
        project(emulator_server).subscribe_direct(list_id, email="someone@example.com")
    elif reason == "manifests":
        workspace.audience("vip", {"inline": ["a@example.com", "c@example.com"]})
    else:
        (workspace.manifests / "aud-vip.yaml").unlink()

    result = cli("apply", "--plan", planfile, "--yes")

    assert result.exit_code == 4, result.output
    (refusal,) = [line for line in result.stderr.splitlines() if "stale plan" in line]
    assert "***@***" in refusal and refusal.endswith(
        "::error::forged.plan was made for audience vip, no longer in the manifests; run plan again"
        if reason == "target"
        else "; run plan again"
    )
    assert "::error::forged.plan was made" in refusal
    assert "ann@example.com" not in result.stderr
    assert not any(line.startswith("::") for line in result.stderr.splitlines())
    assert writes(emulator_server) == []


def test_a_damaged_plan_file_is_named_on_one_line(workspace, cli, emulator_server, tmp_path):
    """The other refusals of a plan file named it as given: a name holding a line end put
    the rest of the name on a log line of its own, a workflow command on a runner."""
    planfile = tmp_path / "nightly\n::error::forged.plan"
    planfile.write_bytes(b"not a plan\n")

    result = cli("apply", "--plan", planfile, "--yes")

    assert result.exit_code == 1, result.output
    assert "nightly\\n::error::forged.plan is not a reconciler plan file" in result.stderr
    assert not any(line.startswith("::") for line in result.stderr.splitlines())


def _as_format_5(planfile: Path, header: dict, body: list, values: dict) -> None:
    """The plan as a build of plan file format 5 saved it, deciding the subscribes' fields
    unread: every add's fields `values`, no field update, no read in its fingerprint."""
    header["version"] = 5
    header["fingerprint"] = {
        name: {key: value for key, value in lists.items() if key != FIELDS_KEY}
        for name, lists in header["fingerprint"].items()
    }
    for destination in header["destinations"]:
        destination["field_update_rows"] = 0
        destination["field_clears"] = []
        destination["field_changes"] = []
        for lp in destination["lists"]:
            lp["add_fields_rows"] = lp["add_rows"]
            lp["field_update_key_rows"] = 0
    adds = [row[0] for row in body if len(row) == 5]
    planfile.write_bytes(
        gzip.compress(with_checksum([header, *body[: len(adds)], *([k, values] for k in adds)]))
    )


def test_a_plan_an_earlier_build_saved_with_a_clear_on_a_subscribe_is_not_applied(
    workspace, cli, emulator_server, tmp_path
):
    # Builds before the field reads of joining members saved a subscribe's clears (null)
    # unread, in plan file format 5: apply --plan sent the null over a planTier another
    # team set, which no plan had shown. Apply never sends a clear on a subscribe; the
    # plan made now reads m0's planTier, which that build did not: the plan is stale, and
    # says why, with zero writes.
    proj = project(emulator_server)
    other = proj.add_list("other-team", None)
    proj.subscribe_direct(other, email="m0@example.com", data_fields={"planTier": "gold"})
    trait_mapping(workspace, "{planTier: v}")
    workspace.csv("data/vip.csv", "email,v", ["m0@example.com,", "n1@example.com,"])
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 3
    _as_format_5(planfile, *saved_lines(planfile), {"planTier": None})
    emulator_server.emulator.clear_log()
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 4, applied.output
    assert (
        "stale plan: the current values of mapped user fields changed in Iterable since "
        "vip.plan was made, or this reconciler reads fields of joining members that the "
        "build which made it (plan file format 5) did not; run plan again"
    ) in applied.stderr
    assert writes(emulator_server) == []
    assert proj.user_by_email("m0@example.com").data_fields["planTier"] == "gold"


def test_a_plan_an_earlier_build_saved_with_an_object_on_a_subscribe_is_not_applied(
    workspace, cli, emulator_server, tmp_path
):
    # The same builds sent an object on a subscribe unread: replacing m0's address it
    # wiped the zip another team set, shown as a mere add. Refused by its field, unsent.
    proj = project(emulator_server)
    other = proj.add_list("other-team", None)
    held = {"address": {"city": "Rome", "zip": "0150"}}
    proj.subscribe_direct(other, email="m0@example.com", data_fields=held)
    trait_mapping(workspace, "{address: {from: v, type: object}}")
    city = '"{""city"":""Oslo""}"'
    workspace.csv("data/vip.csv", "email,v", [f"m0@example.com,{city}", f"n1@example.com,{city}"])
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 3
    _as_format_5(planfile, *saved_lines(planfile), {"address": {"city": "Oslo"}})
    emulator_server.emulator.clear_log()
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 1, applied.output
    assert (
        "vip.plan was made in plan file format 5, whose subscribes give field 'address' an "
        "object without reading the joining member's profile"
    ) in applied.stderr
    assert "nothing was applied: run plan again with this one" in applied.stderr
    assert "example.com" not in applied.output
    assert writes(emulator_server) == []
    assert proj.user_by_email("m0@example.com").data_fields == held


def test_a_plan_an_earlier_build_saved_holding_no_clear_nor_object_is_applied(
    workspace, cli, emulator_server, tmp_path
):
    # Saved on a pull request by the build before an upgrade, applied on merge after it:
    # its subscribes' values are those the plan made now sends, nothing read or lost.
    trait_mapping(workspace, "{planTier: v}")
    workspace.csv("data/vip.csv", "email,v", ["m0@example.com,silver", "n1@example.com,silver"])
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 0
    _as_format_5(planfile, *saved_lines(planfile), {"planTier": "silver"})
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 0, applied.output
    proj = project(emulator_server)
    assert sorted(proj.members(list_named(emulator_server, "vip").id)) == [
        "m0@example.com",
        "n1@example.com",
    ]
    assert proj.user_by_email("n1@example.com").data_fields["planTier"] == "silver"


def trait_mapping(workspace, fields: str) -> None:
    workspace.write(
        "traits.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        f"spec: {{fields: {fields}}}\n",
    )


def saved_lines(planfile: Path) -> tuple[dict, list]:
    """A saved plan's header and its lines after it, without the checksum."""
    header, *body, _checksum = (
        json.loads(line) for line in gzip.decompress(planfile.read_bytes()).splitlines()
    )
    return header, body
