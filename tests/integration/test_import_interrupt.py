"""`reconciler import` stopped midway (Ctrl-C, a full disk): it ends at once, leaves no
half-written manifest or CSV behind, and a run again finishes the job."""

from __future__ import annotations

import resource
import subprocess
import sys

from tests.integration.reliability import (
    _MAIN,
    StderrWatcher,
    spawn_cli,
    subprocess_env,
    writes_seen,
)

IMPORT = ("import", "manifests", "-d", "prod", "--out", "manifests/imported")


def test_ctrl_c_while_a_list_is_streaming_ends_the_import_without_waiting(
    workspace, emulator_server
):
    # One getUsers of a big list can stream for hours: Ctrl-C must not wait for it.
    proj = emulator_server.emulator.project("default")
    alpha = proj.add_list("alpha")
    proj.subscribe_direct(alpha, email="a@example.com")
    emulator_server.emulator.faults.get_users_first_byte_seconds = 120
    # A timeout longer than the wait below: the read cannot end on its own meanwhile.
    env = subprocess_env(workspace, RECONCILER_MEMBER_READS="getUsers", RECONCILER_TIMEOUT="300")
    proc = spawn_cli(workspace, *IMPORT, env=env)
    stderr = StderrWatcher(proc)
    stderr.wait_for("reading list 'alpha': started", proc)

    proc.send_signal(2)  # SIGINT, as Ctrl-C sends
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"import still running 20 s after Ctrl-C: {stderr.text}") from None

    err = stderr.finish()
    assert code == 130, err  # as `import --help` says
    assert "Interrupted: nothing was changed in Iterable" in err and "Traceback" not in err
    out = workspace.manifests / "imported"
    assert not out.exists() or list(out.iterdir()) == []
    assert writes_seen(emulator_server) == 0


def _limit_file_size() -> None:
    # A disk that fills up partway: writes past 8 KiB fail (EFBIG; Python ignores SIGXFSZ).
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


def test_a_full_disk_while_writing_leaves_no_half_file_and_a_run_again_finishes(
    workspace, cli, emulator_server
):
    proj = emulator_server.emulator.project("default")
    alpha = proj.add_list("alpha")
    proj.subscribe_direct(alpha, email="a@example.com")
    beta = proj.add_list("beta", description="long " * 4000)  # a manifest over 8 KiB
    proj.subscribe_direct(beta, email="b@example.com")
    out = workspace.manifests / "imported"
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN, *IMPORT],
        cwd=workspace.root,
        env=subprocess_env(workspace),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_file_size,
    )
    _out, err = proc.communicate(timeout=60)

    assert proc.returncode == 1, err
    assert f"no room to write the files of list {beta} 'beta' in {IMPORT[-1]}" in err
    assert "free some space there, or choose another --out directory" in err
    assert "neither was left half-written" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["alpha.csv", "alpha.yaml"]
    # What was written loads: the plan right after shows no changes.
    plan = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output

    again = cli(*IMPORT[:4], "--out", out)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha.csv",
        "alpha.yaml",
        "beta.csv",
        "beta.yaml",
    ]
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
