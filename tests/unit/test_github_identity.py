"""Which comments and issues count as reconciler's own: marker AND author (issue 15, 10)."""

from reconciler.github.identity import Author


def item(login: str, kind: str = "User") -> dict:
    return {"body": "<!-- reconciler-plan -->\n...", "user": {"login": login, "type": kind}}


def test_a_bot_identity_matches_only_that_bot():
    bot = Author("github-actions[bot]")
    assert bot.wrote(item("github-actions[bot]", "Bot"))
    assert bot.wrote(item("GitHub-Actions[bot]", "Bot"))  # logins are case-insensitive
    assert not bot.wrote(item("github-actions"))  # no person can pass as the bot
    assert not bot.wrote(item("mallory"))
    assert not bot.wrote(item("other-app[bot]", "Bot"))
    assert not bot.wrote({"body": "<!-- reconciler-plan -->"})  # no author: not ours


def test_a_person_identity_never_matches_a_bot_of_the_same_name():
    person = Author("octocat")
    assert person.wrote(item("octocat"))
    assert not person.wrote(item("octocat", "Bot"))
    assert not person.wrote(item("octocat[bot]", "Bot"))


def test_a_gh_call_that_hangs_while_asking_who_the_token_is_ends_the_command(tmp_path, monkeypatch):
    """`gh api user` that hung (RECONCILER_GH_TIMEOUT) was taken for an installation
    token's refusal: GraphQL was asked next and hung as long again, and on Actions the
    command went on as github-actions[bot] to a third hang, the timeout never named until
    then. GitHub gave no answer: the timeout ends the command at once, named."""
    import pytest

    from reconciler.github.gh import Gh, GhError
    from reconciler.github.identity import own_author

    calls = tmp_path / "calls"
    gh = tmp_path / "gh"
    gh.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexec sleep 60\n')
    gh.chmod(0o755)
    monkeypatch.setenv("RECONCILER_GH_TIMEOUT", "0.5")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")

    with pytest.raises(GhError) as caught:
        own_author(Gh(str(gh)))

    assert "gh api GET user did not finish within 0.5 seconds" in str(caught.value)
    assert calls.read_text().splitlines() == ["api --method GET user"]
