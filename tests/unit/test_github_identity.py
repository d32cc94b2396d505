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
