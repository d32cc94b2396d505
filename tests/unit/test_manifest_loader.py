"""load_manifests: valid sets load with their positions; every problem is reported, located."""

from __future__ import annotations

import datetime
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import (
    ApiKeyRef,
    InlineMember,
    Location,
    Manifests,
    load_manifests,
    yaml_file,
)
from reconciler.manifest.manifests import read_alike
from reconciler.render.masking import mask_emails, reveal

DESTINATION = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec:
  region: us
  projectType: hybrid
  apiKey: {env: ITERABLE_API_KEY}
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Problems name files relative to the working directory, as a user would click them.
    monkeypatch.chdir(tmp_path)


def write(path: str, *parts: str) -> Path:
    """Write the parts (each dedented on its own) one after the other."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(textwrap.dedent(part) for part in parts), encoding="utf-8")
    return file


def problems(path: str | Path = ".") -> list[str]:
    with pytest.raises(ManifestError) as raised:
        load_manifests(Path(path))
    return [str(p) for p in raised.value.problems]


def only_problem(path: str | Path = ".") -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


# --- a valid set ----------------------------------------------------------------------


def test_valid_multi_file_set_loads_models_locations_and_list_names() -> None:
    write(
        "manifests/destinations.yaml",
        """\
        apiVersion: reconciler/v1
        kind: Destination
        metadata:
          name: prod
          labels: {team: crm}
        spec:
          region: us
          projectType: hybrid
          apiKey: {env: ITERABLE_API_KEY}
          baseUrl: http://127.0.0.1:8080
        ---
        # a sandbox needs no key
        ---
        apiVersion: reconciler/v1
        kind: Destination
        metadata: {name: play}
        spec: {region: sandbox, projectType: userId}
        """,
    )
    write(
        "manifests/audiences/vip.yml",
        """\
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip}
        spec:
          destination: prod
          members:
            inline:
              - alice@example.com
              - {email: bob@example.com, userId: u-2}
              - userId: u-3
                plan: gold
        """,
    )
    write(
        "manifests/audiences/churn.yaml",
        """\
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: churn-risk}
        spec:
          destination: prod
          listName: Churn risk
          description: Users likely to churn
          members:
            csv: data/churn_risk.csv
            userId: user_id
          unsubscribe: {campaignId: 1234, channelUnsubscribe: false}
        """,
    )

    manifests = load_manifests(Path("manifests"))

    assert isinstance(manifests, Manifests)
    assert manifests.root == Path("manifests")
    assert [f.as_posix() for f in manifests.files] == [
        "manifests/audiences/churn.yaml",
        "manifests/audiences/vip.yml",
        "manifests/destinations.yaml",
    ]
    assert list(manifests.destinations) == ["prod", "play"]
    assert list(manifests.audiences) == ["churn-risk", "vip"]

    prod = manifests.destinations["prod"]
    assert prod.spec.region == "us"
    assert prod.spec.apiKey == ApiKeyRef(env="ITERABLE_API_KEY")
    assert prod.spec.baseUrl == "http://127.0.0.1:8080"
    assert prod.labels == {"team": "crm"}
    assert str(prod.location) == "manifests/destinations.yaml:4:9"
    assert prod.base_dir == (Path.cwd() / "manifests").absolute()
    assert manifests.destinations["play"].spec.apiKey is None

    churn = manifests.audiences["churn-risk"]
    assert churn.list_name == "Churn risk"
    assert churn.spec.members.csv == "data/churn_risk.csv"
    assert (churn.spec.members.email, churn.spec.members.userId) == ("email", "user_id")
    assert churn.spec.unsubscribe.campaignId == 1234
    assert churn.spec.updateExistingUsersOnly is False
    assert str(churn.field_location("members", "csv")) == "manifests/audiences/churn.yaml:9:10"
    assert churn.base_dir == (Path.cwd() / "manifests" / "audiences").absolute()

    vip = manifests.audiences["vip"]
    assert vip.list_name == "vip"
    assert vip.location == Location("manifests/audiences/vip.yml", 3, 18)
    assert [str(loc) for loc in vip.member_locations] == [
        "manifests/audiences/vip.yml:8:9",
        "manifests/audiences/vip.yml:9:9",
        "manifests/audiences/vip.yml:10:9",
    ]
    assert vip.spec.members.inline_members() == [
        InlineMember(email="alice@example.com"),
        InlineMember(email="bob@example.com", userId="u-2"),
        InlineMember(userId="u-3", plan="gold"),
    ]
    assert vip.spec.members.inline_members()[2].traits == {"plan": "gold"}
    assert manifests.audiences_of("prod") == [churn, vip]


def test_field_location_of_an_unwritten_field_is_its_nearest_written_parent() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members: {csv: a.csv}
        """,
    )
    audience = load_manifests(Path("m.yaml")).audiences["a"]
    assert str(audience.field_location("listName")) == "m.yaml:12:1"
    assert str(audience.field_location("members", "email")) == "m.yaml:14:3"
    assert str(audience.field_location("members", "csv")) == "m.yaml:14:18"
    assert audience.member_locations == []


def test_a_single_file_path_and_yml_suffix_are_accepted() -> None:
    write("only.yml", DESTINATION)
    manifests = load_manifests(Path("only.yml"))
    assert manifests.files == [Path("only.yml")]
    assert list(manifests.destinations) == ["prod"]


def test_absolute_paths_are_shown_relative_to_the_working_directory() -> None:
    write("m.yaml", DESTINATION.replace("region: us", "region: mars"))
    assert problems(Path.cwd() / "m.yaml") == [
        "m.yaml:5:11: spec.region: expected one of us, eu, sandbox; got 'mars'"
    ]


def test_hidden_directories_and_other_files_are_ignored() -> None:
    write("m/d.yaml", DESTINATION)
    write("m/.github/workflows/ci.yml", "on: push\n")
    write("m/notes.txt", "not yaml: [")
    # What editors and file managers leave beside a manifest: vim's swap file, emacs's
    # lock and autosave, a backup, macOS's AppleDouble file (README: hidden ones aside).
    for leftover in (".d.yaml.swp", ".#d.yaml", "#d.yaml#", "d.yaml~", "._d.yaml", ".d.yml"):
        write(f"m/{leftover}", "not yaml: [")
    assert load_manifests(Path("m")).files == [Path("m/d.yaml")]


@pytest.mark.parametrize("name", ["vip.YAML", "vip.Yaml", "vip.YML"])
def test_a_manifest_named_in_capitals_is_a_problem_not_skipped(name: str) -> None:
    """A manifest saved as vip.YAML (a Windows tool, a rename) was skipped without a word:
    validate said OK with its audiences gone, and a plan left their lists unkept, or with
    prune: true deleted them."""
    write("m/d.yaml", DESTINATION)
    write(f"m/teams/{name}", "apiVersion: reconciler/v1\n")
    stem, suffix = name.rsplit(".", 1)
    assert problems("m") == [
        f"m/teams/{name}:1:1: not read as a manifest: reconciler reads files named *.yaml "
        "or *.yml, in lower case, so this file's audiences would be left out (with prune: "
        f"true, their lists deleted); rename it {stem}.{suffix.lower()}"
    ]


def test_a_manifest_the_checkout_left_as_a_pointer_is_named_for_what_it_is() -> None:
    """A pointer read as YAML was "a manifest document must be a mapping ...; got a
    string", and a git-crypt file "not UTF-8 text": neither said the checkout lacked it."""
    write("m/d.yaml", DESTINATION)
    Path("m/lfs.yaml").write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 2345\n"
    )
    Path("m/secret.yaml").write_bytes(b"\x00GITCRYPT\x00\x12\x99")
    assert problems("m") == [
        "m/lfs.yaml:1:1: this file is a Git LFS pointer of a 2,345-byte file, not its content: "
        "this checkout did not fetch LFS files. Run `git lfs pull` (in GitHub Actions, give "
        "actions/checkout `lfs: true`)",
        "m/secret.yaml:1:1: this file is encrypted by git-crypt: this checkout has not unlocked "
        "it. Run `git-crypt unlock` (in CI, with the key, after the checkout) before reconciler",
    ]


def test_a_manifest_link_the_checkout_left_as_a_plain_file_is_named_for_what_it_is() -> None:
    """Git with core.symlinks false writes a link as a file holding its target's path,
    which read as YAML was "a manifest document must be a mapping ...; got a string"."""
    write("m/d.yaml", DESTINATION)
    write("shared/aud.yaml", "apiVersion: reconciler/v1\n")
    Path("m/aud.yaml").write_bytes(b"../shared/aud.yaml")
    (problem,) = problems("m")
    assert problem.startswith(
        "m/aud.yaml:1:1: this file is a symbolic link to ../shared/aud.yaml that git checked "
        "out as a file holding that path (git's core.symlinks is false"
    )


def test_a_file_name_with_a_newline_stays_on_its_problem_s_line() -> None:
    """git lets a pull request add `manifests/x<newline>::error::forged.yaml`. Its problems
    named it as it was, so the file name's second line began a line of the CI log of its
    own: a `::` workflow command (an annotation, `::add-mask::`, `::stop-commands::`) or a
    forged "OK"."""
    write("m/d.yaml", DESTINATION)
    write("m/x\n::error::forged\u200b.yaml", "apiVersion: reconciler/v1\nkind: Nope\n")
    found = problems("m")
    assert found and all("\n" not in problem for problem in found)
    assert all(p.startswith("m/x\\n::error::forged\\u200b.yaml:") for p in found), found


# --- problems, each at its exact position ---------------------------------------------


def test_unknown_key_names_the_key_and_the_allowed_keys() -> None:
    write("m.yaml", DESTINATION + "  colour: red\n")
    assert only_problem() == (
        "m.yaml:8:3: unknown key 'colour' in spec; allowed: region, projectType, apiKey, "
        "baseUrl, policy, prune"
    )


def test_unknown_top_level_key() -> None:
    write("m.yaml", DESTINATION + "status: {}\n")
    assert only_problem() == (
        "m.yaml:8:1: unknown key 'status' in the document; "
        "allowed: apiVersion, kind, metadata, spec"
    )


@pytest.mark.parametrize("api_version", ["reconciler/v2", "reconciler/v1beta1"])
def test_another_api_version_is_one_problem_saying_to_upgrade(api_version: str) -> None:
    """A manifest written for a newer reconciler (apiVersion reconciler/v2, with keys this
    one does not know) is one problem saying so, not v1's complaints about its keys that
    read as mistakes to fix; what refers to it is not told it is unknown."""
    v2 = DESTINATION.replace("reconciler/v1", api_version).replace(
        "  projectType: hybrid\n", "  identity: {by: email}\n"
    )
    audience = """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip}
        spec:
          destination: prod
          listName: VIP
          members: {inline: [a@example.com]}
        """
    write("m.yaml", v2, audience)
    assert only_problem() == (
        f"m.yaml:1:13: apiVersion {api_version} is not one this reconciler reads (it reads "
        "reconciler/v1): the manifest was written for another version of reconciler. "
        "Upgrade reconciler to one that reads it, or write the manifest for reconciler/v1"
    )


def test_bad_enum_value() -> None:
    write("m.yaml", DESTINATION.replace("region: us", "region: usa"))
    assert (
        only_problem() == "m.yaml:5:11: spec.region: expected one of us, eu, sandbox; got 'usa' "
        "(did you mean 'us'?)"
    )


def test_literal_api_key_is_refused_without_echoing_it() -> None:
    secret = "sk_live_0123456789abcdef"
    write("m.yaml", DESTINATION.replace("{env: ITERABLE_API_KEY}", secret))
    with pytest.raises(ManifestError) as raised:
        load_manifests(Path("."))
    assert [str(p) for p in raised.value.problems] == [
        "m.yaml:7:11: spec.apiKey: must be {env: VARIABLE} or {file: PATH}: "
        "a literal key is refused because keys never live in git"
    ]
    assert secret not in str(raised.value)


def test_nothing_given_under_api_key_is_echoed() -> None:
    secret = "sk_live_0123456789abcdef"
    write("m.yaml", DESTINATION.replace("{env: ITERABLE_API_KEY}", f"{{env: {secret}-x}}"))
    found = only_problem()
    assert found.startswith("m.yaml:7:17: spec.apiKey.env: expected an environment variable name")
    assert secret not in found


def test_api_key_needs_exactly_one_of_env_and_file() -> None:
    write("m.yaml", DESTINATION.replace("{env: ITERABLE_API_KEY}", "{env: A, file: b}"))
    assert only_problem() == "m.yaml:7:3: spec.apiKey: give exactly one of env, file"


def test_api_key_is_required_outside_the_sandbox() -> None:
    write("m.yaml", DESTINATION.replace("  apiKey: {env: ITERABLE_API_KEY}\n", ""))
    assert only_problem() == (
        "m.yaml:4:1: spec.apiKey: required for region us: give {env: VARIABLE} or {file: PATH}"
    )


def test_base_url_must_be_http() -> None:
    write("m.yaml", DESTINATION + "  baseUrl: ftp://example.com\n")
    assert only_problem() == (
        "m.yaml:8:12: spec.baseUrl: expected an http(s) URL such as http://127.0.0.1:8080"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://app:hunter2-secret@api.iterable.com",
        "http://0a1b2c3d4e5f60718293a4b5c6d7e8f9@127.0.0.1:8080",
        "http://:hunter2-secret@127.0.0.1:8080/root",
    ],
)
def test_base_url_with_a_user_name_or_password_is_refused_unquoted(url: str) -> None:
    """A credential pasted before the host lived in git and was sent (as Basic auth) with
    every request; keys never live in manifests."""
    write("m.yaml", DESTINATION + f"  baseUrl: '{url}'\n")
    found = only_problem()
    assert found == (
        "m.yaml:8:12: spec.baseUrl: a user name or password before baseUrl's host is refused "
        "because credentials never live in git; the API key goes in apiKey ({env: VARIABLE} "
        "or {file: PATH}), sent in a header only to hosts it may go to"
    )
    assert "hunter2" not in found and "0a1b2c" not in found


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/?api_key=hunter2-secret",
        "http://127.0.0.1:8080?api_key=hunter2-secret",
        "http://127.0.0.1:8080/root#hunter2-secret",
    ],
)
def test_base_url_with_a_query_or_fragment_is_refused_unquoted(url: str) -> None:
    write("m.yaml", DESTINATION + f"  baseUrl: '{url}'\n")
    found = only_problem()
    assert found.startswith("m.yaml:8:12: spec.baseUrl: baseUrl takes no query or fragment (?, #)")
    assert "hunter2" not in found


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.0.0.1:8080/", "https://proxy.example/a@b/c"]
)
def test_base_url_with_a_path_loads(url: str) -> None:
    write("m.yaml", DESTINATION + f"  baseUrl: '{url}'\n")
    assert load_manifests(Path("m.yaml")).destinations["prod"].spec.baseUrl == url


def test_eu_region_refuses_email_projects() -> None:
    write("m.yaml", DESTINATION.replace("region: us", "region: eu").replace("hybrid", "email"))
    assert only_problem() == (
        "m.yaml:6:16: spec.projectType: Iterable has no email-based projects in the EU data "
        "center; use hybrid or userId with region eu"
    )


def test_bad_type_nested_in_a_list_points_at_the_entry() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members:
            inline:
              - ok@example.com
              - {email: bob@example.com, userId: 42}
              - [not, a, member]
              - {plan: gold}
        """,
    )
    assert [reveal(p, True) for p in problems()] == [
        "m.yaml:17:42: spec.members.inline[1].userId: expected a string; got the number 42 "
        "(put it in quotes to make it text)",
        "m.yaml:18:9: spec.members.inline[2]: expected an email or userId string, or a mapping "
        "with email and/or userId; got a list",
        "m.yaml:19:9: spec.members.inline[3]: give email, userId or both",
    ]


def test_a_numeric_user_id_written_bare_in_an_inline_list_says_to_quote_it() -> None:
    """`inline: [10042, 10043]`, a list of numeric userIds as most apps have them, is a
    list of numbers to YAML: refused, as it should be, but without the hint every other
    text field gives (`userId: 10042` says to put it in quotes). The number is a member's
    userId: masked as every output masks one (validate's output printed it in full), and
    shown as the file writes it with --show-members (`00123`, where YAML reads 123)."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members:
            inline: [10042, true, {userId: 00123}]
        """,
    )
    entry = "expected an email or userId string, or a mapping with email and/or userId"
    quote = "(put it in quotes to make it text)"
    assert [mask_emails(p) for p in problems()] == [
        f"m.yaml:15:14: spec.members.inline[0]: {entry}; got the number 1*** {quote}",
        f"m.yaml:15:21: spec.members.inline[1]: {entry}; got true {quote}",
        f"m.yaml:15:36: spec.members.inline[2].userId: expected a string; got the number 0*** "
        f"{quote}",
    ]
    assert [reveal(p, True) for p in problems()][::2] == [
        f"m.yaml:15:14: spec.members.inline[0]: {entry}; got the number 10042 {quote}",
        "m.yaml:15:36: spec.members.inline[2].userId: expected a string; got the number 00123 "
        f"{quote}",
    ]


def test_an_inline_member_read_through_an_anchor_or_an_alias_is_warned_of() -> None:
    """`- *vip` under an anchor `&vip` written before it was that value (another member,
    or any value of the document), not the userId '*vip', and `- &a1 u1` the member 'u1',
    both silently: each identity read through an anchor or an alias is warned of, at the
    anchored value, never naming it (warnings are not masked). Anchors on the list, on a
    member's mapping and its traits, and merge keys are fine, and quoted values are text."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata:
          name: a
          annotations: {owner: &own jane}
        spec:
          destination: prod
          members:
            inline: &team
              - &vip a@example.com
              - *vip
              - &a1 u1
              - "*vip"
              - '&a2 u2'
              - &ann {email: ann@example.com, plan: &p gold}
              - {email: bob@example.com, <<: {plan: gold}}
              - {userId: &u3 u3}
              - {"userId": *own}
        """,
    )
    manifests = load_manifests(Path("."))
    alias = (
        "a value that starts with * is an alias to YAML, read as the value anchored at line "
        "{}, not as its text; put a member's value that starts with * in quotes"
    )
    anchor = (
        "a value that starts with & is an anchor to YAML, which it drops: the member is the "
        "text after the anchor's name; put the whole value in quotes if the & belongs to it"
    )
    assert [str(w) for w in manifests.warnings] == [
        f"m.yaml:13:24: spec.members.inline[8].userId: {alias.format(13)}",
        f"m.yaml:18:9: spec.members.inline[0]: {anchor}",
        f"m.yaml:18:9: spec.members.inline[1]: {alias.format(18)}",
        f"m.yaml:20:9: spec.members.inline[2]: {anchor}",
        f"m.yaml:25:18: spec.members.inline[7].userId: {anchor}",
    ]


def test_a_member_written_on_without_its_dash_is_not_joined_to_the_one_above() -> None:
    """A bare value YAML finds continued on the next line is one value, its lines joined by
    a space: `- u1` over `  u2` (the second member's `- ` left out) was the one userId
    'u1 u2', valid to Iterable, so u2 was silently left out of the list and a user
    'u1 u2' planned in. A value so written is refused at its line, whatever it holds; on
    one line, quoted, or in a block scalar it is as written."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members:
            inline:
              - u1
                u2
              - {email: ann@example.com, userId: u3
                  u4}
              - email: bob@example.com
                userId: u5

                  u6
              - ann@example.com
                cat@example.com
              - "u7 u8"
              - u9 u10
              - 'u11
                u12'
              - &later u13
                u14
              - *later
              - |
                u15
        """,
    )
    joined = (
        "a bare value continued on the next line is one value to YAML, its lines joined by a "
        "space: this is one member, not one a line; start each member's line with '- ' "
        "(or quote the value, if it is one)"
    )
    assert problems() == [
        f"m.yaml:16:9: spec.members.inline[0]: {joined}",
        f"m.yaml:18:42: spec.members.inline[1].userId: {joined}",
        f"m.yaml:21:17: spec.members.inline[2].userId: {joined}",
        f"m.yaml:24:9: spec.members.inline[3]: {joined}",
        f"m.yaml:30:9: spec.members.inline[7]: {joined}",
    ]


def test_members_written_with_commas_in_a_dash_list_are_not_one_member() -> None:
    """In a `- ` list a comma is text: `- 101, 102, 103`, a list of userIds pasted from a
    spreadsheet or an email, was the one userId '101, 102, 103', valid to Iterable, so the
    three members were left out of the list without a word and a user '101, 102, 103'
    planned in. A bare identity holding a comma is refused at its line; in [ ] a comma
    separates members, and quoted it is the value's own."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members:
            inline:
              - 101, 102, 103
              - u1,u2   # two
              - {email: ann@example.com, userId: "u3,u4"}
              - email: bob@example.com, cat@example.com
              - 'u7, u8'
        """,
    )
    comma = (
        "a comma in a bare value is text to YAML outside [ ]: this is one member, not one "
        "between each comma; start each member's line with '- ' (or quote the value, if it "
        "is one)"
    )
    assert problems() == [
        f"m.yaml:16:9: spec.members.inline[0]: {comma}",
        f"m.yaml:17:9: spec.members.inline[1]: {comma}",
        f"m.yaml:19:16: spec.members.inline[3].email: {comma}",
    ]
    # In [ ] each comma ends a member.
    write(
        "m.yaml",
        DESTINATION,
        "---\n",
        textwrap.dedent(
            """\
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec: {destination: prod, members: {inline: [101, 102, u1,u2]}}
        """
        ).replace("101, 102", "'101', '102'"),
    )
    assert len(load_manifests(Path(".")).audiences["a"].spec.members.inline or []) == 4


def test_joined_members_are_said_in_the_same_run_as_another_refused_member() -> None:
    """The joined-member check ran only once an audience's model validated: `- 00123`
    (a number to YAML) beside `- a, b` reported the number alone, and the comma (and a
    member continued on the next line) only on the run after the number was quoted."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members:
            inline:
              - 00123
              - a, b
              - email: 7
                userId: u1, u4
              - u2
                u3
        """,
    )
    found = problems()
    assert [p.split(": ")[0:2] for p in found] == [
        ["m.yaml:16:9", "spec.members.inline[0]"],
        ["m.yaml:17:9", "spec.members.inline[1]"],
        ["m.yaml:18:16", "spec.members.inline[2].email"],
        ["m.yaml:19:17", "spec.members.inline[2].userId"],
        ["m.yaml:20:9", "spec.members.inline[3]"],
    ]
    comma = "a comma in a bare value is text to YAML"
    assert comma in found[1] and comma in found[3]
    assert "continued on the next line is one value to YAML" in found[4]


def test_a_key_that_is_not_text_is_said_so_at_its_own_line() -> None:
    """A date used as a label's key was located at the `labels:` line, since pydantic
    names such a key by its repr; an inline member's `true:`, `null:` or date key was
    called an unknown key, "allowed: email, userId", though its other keys are traits:
    what is wrong is that YAML reads the key as something other than text."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata:
          name: a
          labels:
            team: crm
            2024-01-01: launch
        spec:
          destination: prod
          members:
            inline:
              - email: ann@example.com
                true: 1
              - email: bob@example.com
                null: 2
              - email: cat@example.com
                2024-01-01: 3
              - {email: dan@example.com, 5: 4}
        """,
    )
    quote = " (put it in quotes to make it text)"
    assert problems() == [
        f"m.yaml:15:5: metadata.labels: keys must be strings; got the date 2024-01-01{quote}",
        f"m.yaml:21:9: spec.members.inline[0]: keys must be strings; got true{quote}",
        f"m.yaml:23:9: spec.members.inline[1]: keys must be strings; got null{quote}",
        "m.yaml:25:9: spec.members.inline[2]: keys must be strings; got the date "
        f"2024-01-01{quote}",
        f"m.yaml:26:34: spec.members.inline[3]: keys must be strings; got 5{quote}",
    ]


def test_an_inline_member_with_its_identity_key_misspelt_says_what_was_meant() -> None:
    # Other keys of an inline member are traits, so `Email:` or `user_id:` left it with
    # no identity and no word on why.
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members:
            inline:
              - {Email: ann@example.com, plan: gold}
              - {user_id: u-2}
        """,
    )
    assert problems() == [
        "m.yaml:16:9: spec.members.inline[0]: give email, userId or both (did you mean "
        "'email' for 'Email'?)",
        "m.yaml:17:9: spec.members.inline[1]: give email, userId or both (did you mean "
        "'userId' for 'user_id'?)",
    ]


def test_an_inline_member_whose_identity_is_null_says_so() -> None:
    # `userId:` left empty, `~` or `null` is YAML's null: the key is there, spelt right,
    # and the hint that looked for a misspelling offered it for itself ("did you mean
    # 'userId' for 'userId'?").
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members:
            inline:
              - {userId: ~, plan: gold}
              - email:
              - {email: null, userId: null}
        """,
    )
    assert problems() == [
        "m.yaml:16:9: spec.members.inline[0]: give email, userId or both (userId is null)",
        "m.yaml:17:9: spec.members.inline[1]: give email, userId or both (email is null)",
        "m.yaml:18:9: spec.members.inline[2]: give email, userId or both (email and userId "
        "are null)",
    ]


def test_members_need_exactly_one_source() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members: {csv: a.csv, inline: []}
        """,
    )
    assert only_problem() == (
        "m.yaml:14:3: spec.members: give exactly one of inline, csv, parquet, sql"
    )


def test_strings_are_not_booleans_and_numbers_are_not_strings() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          listName: 0777
          members: {csv: a.csv}
          updateExistingUsersOnly: "yes"
          unsubscribe: {campaignId: 0}
        """,
    )
    # 0777 is 777 to YAML 1.2: the message quotes what the file writes, which is what
    # the reader looks for in it.
    assert problems() == [
        "m.yaml:14:13: spec.listName: expected a string; got 0777 "
        "(put it in quotes to make it text)",
        "m.yaml:16:28: spec.updateExistingUsersOnly: expected true or false; got 'yes'",
        "m.yaml:17:29: spec.unsubscribe.campaignId: expected a number greater than 0; got 0",
    ]


def test_an_unquoted_date_where_text_is_expected_is_the_text_as_written() -> None:
    """YAML 1.2 as editors read it (yaml-language-server) has no dates: `description:
    2024-05-01` is text there, and the schema passes it, where reconciler's reader makes
    it a date, which validate refused wherever text is expected: green in the editor, red
    in CI. Such a date is now the text the file writes, wherever text is expected; under
    an inline member's other keys (its traits) a date is still a date."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: 2024-05-01, labels: {reviewed: 2024-05-01 09:30:00}}
        spec:
          destination: prod
          listName: 2024-05-01t09:30:00Z
          description: 2024-05-01  # a comment
          members:
            inline: [2024-05-02, {userId: 2024-05-03, renews: 2024-06-01}]
        """,
    )
    audience = load_manifests(Path("m.yaml")).audiences["2024-05-01"]
    assert audience.labels == {"reviewed": "2024-05-01 09:30:00"}
    assert audience.spec.listName == "2024-05-01t09:30:00Z"
    assert audience.spec.description == "2024-05-01"
    first, second = audience.spec.members.inline or []
    assert first == "2024-05-02"
    assert not isinstance(second, str)
    assert second.userId == "2024-05-03"
    assert second.traits == {"renews": datetime.date(2024, 6, 1)}


def test_numbers_out_of_range_or_quoted_say_what_is_expected_in_the_house_style() -> None:
    """Bounds, number types and empty mappings said in pydantic's own words ("Input should
    be greater than or equal to 0"), without the value found."""
    write(
        "m.yaml",
        DESTINATION.replace(
            "  apiKey:",
            '  policy: {maxRemovalPercent: 150, maxRemovals: -1, maxAdditionPercent: "5"}\n'
            "  apiKey:",
        ),
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members: {csv: a.csv}
          minMembers: "10"
        ---
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields: {}
        """,
    )
    assert problems() == [
        "m.yaml:7:31: spec.policy.maxRemovalPercent: expected a number of at most 100; got 150",
        "m.yaml:7:49: spec.policy.maxRemovals: expected a number of at least 0; got -1",
        "m.yaml:7:73: spec.policy.maxAdditionPercent: expected a number; got '5' "
        "(remove the quotes to make it a number)",
        "m.yaml:16:15: spec.minMembers: expected a whole number; got '10' "
        "(remove the quotes to make it a number)",
        "m.yaml:22:3: spec.fields: must not be empty",
    ]


def test_member_bounds_out_of_order_point_at_min_members() -> None:
    # At the spec line they named no line worth looking at in a long audience.
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members: {csv: a.csv}
          minMembers: 10
          maxMembers: 5
        """,
    )
    assert only_problem() == (
        "m.yaml:15:15: spec.minMembers: must not be greater than maxMembers (5)"
    )


def test_a_campaign_id_beyond_int64_is_refused_at_its_line() -> None:
    # Iterable's campaign ids are int64: a longer one (a typo, two ids run together) is
    # refused here rather than by Iterable, whose unsubscribes would then fail at apply.
    audience = """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members: {csv: a.csv}
          unsubscribe: {campaignId: %d}
        """
    write("m.yaml", DESTINATION, audience % 2**63)
    assert only_problem() == (
        "m.yaml:15:29: spec.unsubscribe.campaignId: expected a number less than "
        f"{2**63}; got {2**63}"
    )
    write("m.yaml", DESTINATION, audience % (2**63 - 1))
    assert load_manifests(Path(".")).audiences["a"].spec.unsubscribe.campaignId == 2**63 - 1


def test_missing_name() -> None:
    write("m.yaml", DESTINATION.replace("{name: prod}", "{labels: {a: b}}"))
    assert only_problem() == "m.yaml:3:1: metadata.name: required"


@pytest.mark.parametrize("name", ["prod eu", "café-clients"])
def test_bad_name(name: str) -> None:
    # é is a letter to anyone reading the message: it says which letters.
    write("m.yaml", DESTINATION.replace("{name: prod}", f"{{name: '{name}'}}"))
    assert only_problem() == (
        "m.yaml:3:18: metadata.name: expected 1-200 ASCII letters, digits, '-', '_' or '.'; "
        f"got {name!r}"
    )


def test_missing_and_wrong_api_version() -> None:
    write(
        "m.yaml",
        DESTINATION.replace("apiVersion: reconciler/v1\n", "")
        + "---\n"
        + DESTINATION.replace("{name: prod}", "{name: b}").replace("v1", "v2"),
    )
    assert problems() == [
        "m.yaml:1:1: apiVersion: required; expected reconciler/v1",
        "m.yaml:8:13: apiVersion reconciler/v2 is not one this reconciler reads (it reads "
        "reconciler/v1): the manifest was written for another version of reconciler. "
        "Upgrade reconciler to one that reads it, or write the manifest for reconciler/v1",
    ]


def test_unknown_kind_lists_the_allowed_kinds() -> None:
    write("m.yaml", DESTINATION.replace("kind: Destination", "kind: Destinaton"))
    assert only_problem() == (
        "m.yaml:2:7: kind: unknown kind 'Destinaton' (did you mean 'Destination'?); expected "
        "one of Destination, Audience, TraitMapping"
    )


@pytest.mark.parametrize(
    ("line", "typo", "problem"),
    [
        # a key with its case slipped, a letter missing, a value a letter or two off
        (
            "  projectType: hybrid\n",
            "  projectType: hybrid\n  apikey: {env: K}\n",
            "m.yaml:7:3: unknown key 'apikey' in spec (did you mean 'apiKey'?); allowed: ",
        ),
        (
            "  projectType: hybrid\n",
            "  projectType: userid\n",
            "m.yaml:6:16: spec.projectType: expected one of hybrid, userId, email; got 'userid' "
            "(did you mean 'userId'?)",
        ),
        (
            "  region: us\n",
            "  region: sandbx\n",
            "m.yaml:5:11: spec.region: expected one of us, eu, sandbox; got 'sandbx' "
            "(did you mean 'sandbox'?)",
        ),
        # two letters swapped in a short word, which the similarity ratio misses
        (
            "  region: us\n",
            "  region: su\n",
            "m.yaml:5:11: spec.region: expected one of us, eu, sandbox; got 'su' "
            "(did you mean 'us'?)",
        ),
    ],
)
def test_a_near_miss_says_what_was_meant(line: str, typo: str, problem: str) -> None:
    write("m.yaml", DESTINATION.replace(line, typo))
    assert only_problem().startswith(problem)


def test_an_audience_field_typo_says_what_was_meant() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: churn}
        spec:
          destination: prod
          listname: Churn risk
          members: {inline: [a@example.com]}
        """,
    )
    assert only_problem().startswith(
        "m.yaml:14:3: unknown key 'listname' in spec (did you mean 'listName'?); allowed: "
    )


def test_a_source_with_two_letters_swapped_says_what_was_meant() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: churn}
        spec:
          destination: prod
          members: {cvs: data/churn.csv}
        """,
    )
    assert only_problem().startswith(
        "m.yaml:14:13: unknown key 'cvs' in spec.members (did you mean 'csv'?); allowed: "
    )


def test_a_misspelt_required_key_is_one_problem_not_two() -> None:
    """`regoin:` was also reported as region missing: two problems for one slip."""
    write("a.yaml", DESTINATION.replace("  region: us", "  regoin: us"))
    write("b.yaml", DESTINATION.replace("kind:", "Kind:").replace("prod", "staging"))
    assert [p.split(" (did you mean")[0] for p in problems()] == [
        "a.yaml:5:3: unknown key 'regoin' in spec",
        "b.yaml:2:1: unknown key 'Kind' in the document",
    ]
    write("b.yaml", DESTINATION.replace("kind: Destination", "kind: null"))
    assert problems()[1].startswith("b.yaml:2:7: kind: required")


def test_no_suggestion_when_nothing_is_close() -> None:
    write("m.yaml", DESTINATION.replace("region: us", "region: mars"))
    assert "did you mean" not in only_problem()


def test_missing_kind() -> None:
    write("m.yaml", DESTINATION.replace("kind: Destination\n", ""))
    assert only_problem() == (
        "m.yaml:1:1: kind: required; expected one of Destination, Audience, TraitMapping"
    )


def test_trait_mapping_loads_as_a_kind() -> None:
    # The kind's own checks are in tests/unit/test_traits_manifest.py.
    write(
        "m.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm}
        spec:
          fields: {plan_tier: plan}
        """,
    )
    manifests = load_manifests(Path("."))
    assert list(manifests.trait_mappings) == ["crm"]
    assert manifests.trait_mappings["crm"].spec.field_specs()["plan_tier"].from_ == "plan"


def test_a_document_that_is_not_a_mapping() -> None:
    write("m.yaml", "- a\n- b\n")
    assert only_problem() == (
        "m.yaml:1:1: a manifest document must be a mapping with apiVersion, kind, metadata "
        "and spec; got a list"
    )


def test_a_list_of_manifests_says_to_write_one_document_each() -> None:
    write("m.yaml", "- apiVersion: reconciler/v1\n  kind: Destination\n- kind: Audience\n")
    assert only_problem() == (
        "m.yaml:1:1: a manifest document must be a mapping with apiVersion, kind, metadata "
        "and spec; got a list; write each manifest as its own document, with a line `---` "
        "between"
    )


def test_yaml_syntax_error_keeps_the_documents_before_it() -> None:
    write(
        "m.yaml",
        DESTINATION.replace("region: us", "region: usa"),
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a
        """,
    )
    found = problems()
    assert (
        found[0] == "m.yaml:5:11: spec.region: expected one of us, eu, sandbox; got 'usa' "
        "(did you mean 'us'?)"
    )
    assert found[1].startswith("m.yaml:12:1: invalid YAML: ")
    assert len(found) == 2


@pytest.mark.parametrize(
    "written",
    [
        "*Sk9f2c41d0e8b7a6",
        "!Sk9f2c41d0e8b7a6",
        "{env: *Sk9f2c41d0e8b7a6}",
        "{file: !Sk9f2c41d0e8b7a6 }",
    ],
)
def test_a_key_written_bare_where_the_api_key_goes_is_never_quoted_back(written: str) -> None:
    """`apiKey: *Sk9f...` (or `!Sk9f...`), a key pasted bare, is an alias or a tag to YAML:
    the message quoted it in full (`found undefined alias 'Sk9f...'`, `tag !Sk9f...`), in
    validate's output and a CI log; now its name is left out, even with --show-members,
    and the message says where a key goes."""
    write("m.yaml", DESTINATION.replace("{env: ITERABLE_API_KEY}", written))
    found = only_problem()
    assert "9f2c41d0e8b7a6" not in reveal(found, show_members=True), found
    assert found.startswith("m.yaml:7:"), found
    assert "where the API key goes" in found and "`apiKey: {env: VARIABLE}`" in found, found


def test_an_audience_refused_for_one_key_is_warned_of_in_the_same_run() -> None:
    """An audience with a key it does not allow is refused; the warnings of what YAML read
    otherwise than written (a listName cut by a comment, a member read through an anchor,
    a listName holding a bare invisible character) were made only of a refused audience's
    validated spec, so they came on the run after the key was fixed. They are made of the
    document as YAML read it, beside the error, each once."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          colour: blue
          listName: Sale #1
          description: "Gone\u200b"
          members:
            inline:
              - &a1 u1@example.com
        """,
    )
    write(
        "n.yaml",
        DESTINATION.replace("prod", "staging"),
        "---\n",
        "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: b}\nspec:\n"
        "  destination: staging\n  listName: Gone\u200b\n  colours: []\n"
        "  members: {inline: [u2@example.com]}\n",
    )
    with pytest.raises(ManifestError) as raised:
        load_manifests(Path("."))

    assert [p.message.split(";")[0] for p in raised.value.problems] == [
        "unknown key 'colour' in spec",
        "unknown key 'colours' in spec",
    ]
    assert [str(w) for w in raised.value.warnings] == [
        "m.yaml:15:13: listName 'Sale' ends where ' #1' starts a YAML comment; put the whole "
        "text in quotes if '#1' belongs to it",
        "m.yaml:19:9: spec.members.inline[0]: a value that starts with & is an anchor to "
        "YAML, which it drops: the member is the text after the anchor's name; put the whole "
        "value in quotes if the & belongs to it",
        "n.yaml:14:13: listName 'Gone\\u200b' holds an invisible character (U+200B ZERO "
        "WIDTH SPACE) written as it is, so the file shows another list's name; write it as "
        'an escape inside double quotes: listName: "Gone\\u200b"',
    ]


def test_an_alias_to_an_anchor_of_another_document_says_anchors_do_not_carry_over() -> None:
    write(
        "m.yaml",
        DESTINATION.replace("  region: us\n", "  region: &region us\n"),
        """\
        ---
        apiVersion: reconciler/v1
        kind: Destination
        metadata: {name: staging}
        spec: {region: *region, projectType: hybrid, apiKey: {env: STAGING_KEY}}
        """,
    )
    assert only_problem() == (
        "m.yaml:12:16: invalid YAML: found undefined alias 'region'; an alias (*name) can "
        "only refer to an anchor (&name) written before it in the same document, not in "
        "another document of the file"
    )


def test_a_flow_mapping_left_open_says_so() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members: {inline: [a@example.com]
          removals: never
        """,
    )
    assert only_problem() == (
        "m.yaml:15:3: invalid YAML: expected ',' or '}', but got '<scalar>' (while parsing a "
        "flow mapping at line 14, column 12); check that the { opened there ends with } and "
        "its entries are separated by ','"
    )


def test_yaml_syntax_error_position() -> None:
    write("m.yaml", "apiVersion: reconciler/v1\nkind: Audience: x\n")
    assert only_problem() == (
        "m.yaml:2:15: invalid YAML: mapping values are not allowed here; a value that holds "
        "': ' needs quotes, or this line is indented too far"
    )


@pytest.mark.parametrize(
    ("written", "column"), [("- '@jane'", 0), ("- @jane", 9), ("- `jane`", 9), ("- [x, @jane]", 13)]
)
def test_a_value_starting_with_a_reserved_character_says_to_quote_it(
    written: str, column: int
) -> None:
    """A userId such as a social handle (`@jane`) written bare is a syntax error, as YAML
    keeps `@` and a backquote for itself: "found character '@' that cannot start any
    token (while scanning for the next token)" said nothing of what to do."""
    write(
        "m.yaml",
        DESTINATION,
        f"""\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {{name: a}}
        spec:
          destination: prod
          members:
            inline:
              {written}
        """,
    )
    if not column:
        load_manifests(Path("."))
        return
    character = written.lstrip("- [x,")[0]
    assert only_problem() == (
        f"m.yaml:16:{column}: invalid YAML: found character '{character}' that cannot start "
        "any token (while scanning for the next token); YAML keeps @ and ` for itself: put "
        "a value that starts with one in quotes"
    )


@pytest.mark.parametrize(
    ("line", "column", "advice"),
    [
        ("\t  - a@example.com", 1, "indent with spaces, not tabs"),
        ("  \t  - a@example.com", 3, "indent with spaces, not tabs"),
        ("      -\ta@example.com", 8, "put a space after '-', not a tab"),
    ],
)
def test_a_tab_is_said_to_be_one_where_it_is(line: str, column: int, advice: str) -> None:
    """A tab after a list item's dash (`-<TAB>a@example.com`, as an editor that aligns
    values writes it) was refused with "indent with spaces, not tabs", though the line's
    indentation was all spaces."""
    text = "apiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: a}\nspec:\n"
    text += "  destination: prod\n  members:\n    inline:\n" + line + "\n"
    write("m.yaml", DESTINATION, "---\n", text)
    found = only_problem()
    assert found.startswith(f"m.yaml:16:{column}: invalid YAML: "), found
    assert found.endswith(f"; {advice}"), found


_STARTS_WITH_AN_INDICATOR = [
    (
        "- *vip",
        9,
        "invalid YAML: found undefined alias '{}'; a value that starts with * is an alias "
        "to YAML (of an anchor &name): put a member's value that starts with * in quotes",
        ("***", "vip"),
    ),
    (
        "- {email: a@b.co, userId: *vip42}",
        33,
        "invalid YAML: found undefined alias '{}'; a value that starts with * is an alias "
        "to YAML (of an anchor &name): put a member's value that starts with * in quotes",
        ("v***", "vip42"),
    ),
    (
        "- !user42",
        9,
        "tag !{} is not supported here; a value that starts with ! is a tag to YAML: put "
        "it in quotes to make it text",
        ("u***", "user42"),
    ),
    (
        "- &a1",
        9,
        "an anchor (&name) with no value; a value that starts with & is an anchor to YAML, "
        "not text: put a member's value that starts with & in quotes",
        ("", ""),
    ),
]


@pytest.mark.parametrize(("written", "column", "message", "names"), _STARTS_WITH_AN_INDICATOR)
def test_a_user_id_starting_with_an_indicator_is_masked_and_says_to_quote_it(
    written: str, column: int, message: str, names: tuple[str, str]
) -> None:
    """A userId starting with `*`, `!` or `&` written bare is an alias, a tag or an anchor
    to YAML. The messages said nothing of quoting it, and the alias's and the tag's quoted
    the member's userId in full ("found undefined alias 'vip'", "tag !user42 is not
    supported here"), where every other identity in validate's output is masked."""
    write(
        "m.yaml",
        DESTINATION,
        f"""\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {{name: a}}
        spec:
          destination: prod
          members:
            inline:
              - u1
              {written}
        """,
    )
    found = only_problem()
    masked, shown = names
    assert reveal(found, False) == f"m.yaml:17:{column}: " + message.format(masked)
    assert reveal(found, True) == f"m.yaml:17:{column}: " + message.format(shown)
    # Quoted as the message says, it is the member's userId.
    value = written.removeprefix("- ").split("userId: ")[-1].rstrip("}")
    text = Path("m.yaml").read_text(encoding="utf-8")
    Path("m.yaml").write_text(text.replace(value, f"'{value}'"), encoding="utf-8")
    inline = load_manifests(Path(".")).audiences["a"].spec.members.inline
    assert inline is not None and value in (inline[1], getattr(inline[1], "userId", None))


def test_an_undefined_alias_or_a_tag_outside_members_is_named_in_full() -> None:
    """Outside an inline member, an alias's or a tag's name is the manifest's, not a
    member's: shown as written."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          listName: !Important
          description: !!binary aGVsbG8=
          members:
            inline: [u1]
        """,
    )
    assert problems() == [
        "m.yaml:14:13: tag !Important is not supported here; a value that starts with ! is "
        "a tag to YAML: put it in quotes to make it text",
        "m.yaml:15:16: tag !!binary is not supported here",
    ]


@pytest.mark.parametrize("written", [".inf", "-.inf", ".NaN", "+.Inf"])
def test_infinity_and_not_a_number_are_quoted_as_written(written: str) -> None:
    """`.inf`, `-.inf` and `.nan` were quoted back as Python writes them (`got inf`), not
    as the file does, where the reader looks for them."""
    write(
        "m.yaml",
        DESTINATION,
        f"""\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {{name: a}}
        spec:
          destination: prod
          listName: {written}
          members:
            inline: [{written}]
        """,
    )
    assert [reveal(p, True) for p in problems()] == [
        f"m.yaml:14:13: spec.listName: expected a string; got {written} (put it in quotes to "
        "make it text)",
        "m.yaml:16:14: spec.members.inline[0]: expected an email or userId string, or a "
        f"mapping with email and/or userId; got the number {written} (put it in quotes to make "
        "it text)",
    ]


def test_a_key_indented_out_of_line_says_to_check_the_indentation() -> None:
    # apiKey one space deeper than the spec's other keys, after a nested mapping
    write(
        "m.yaml",
        DESTINATION.replace("  apiKey: {env: ITERABLE_API_KEY}\n", "")
        .replace("  region: us\n", "  policy:\n    maxRemovals: 5\n  region: us\n")
        .replace("  region: us\n", "   region: us\n"),
    )
    assert only_problem().startswith(
        "m.yaml:7:4: invalid YAML: expected <block end>, but found '<block mapping start>'"
    )
    assert only_problem().endswith(
        "; check this line's indentation: a key lines up with the other keys of its mapping"
    )


def test_a_bad_value_brought_in_by_a_merge_key_is_located_where_it_is_written() -> None:
    """`<<: *base`: the error pointed at the mapping that merged the value, not at it."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          members: {inline: [a@example.com]}
          <<:
            - {destination: prod, resubscribe: allowed}
            - removals: nope
        """,
    )
    assert only_problem() == (
        "m.yaml:16:17: spec.removals: expected one of allowed, never; got 'nope'"
    )


def test_duplicate_yaml_key() -> None:
    write("m.yaml", DESTINATION.replace("  region: us\n", "  region: us\n  region: eu\n"))
    assert only_problem() == "m.yaml:6:3: duplicate key 'region'; first written at line 5, column 3"


def test_two_manifests_without_the_line_between_them_say_so_once() -> None:
    write("m.yaml", DESTINATION + DESTINATION.replace("name: prod", "name: eu"))
    found = problems()
    assert found[0] == (
        "m.yaml:8:1: duplicate key 'apiVersion'; first written at line 1, column 1 (a second "
        "manifest in one file needs a line `---` before it)"
    )
    assert len(found) == 4  # kind, metadata, spec: each named, the hint said once
    assert not any("---" in problem for problem in found[1:])


def test_file_that_is_not_utf8() -> None:
    Path("good.yaml").write_text(DESTINATION, encoding="utf-8")
    Path("latin1.yaml").write_bytes("# caf\xe9\nkind: Audience\n".encode("latin-1"))
    assert only_problem() == (
        "latin1.yaml:1:6: file is not UTF-8 text (byte 0xe9); save it as UTF-8"
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_named_for_what_it_is(encoding: str) -> None:
    """Windows PowerShell's `>` (and Notepad's "Unicode") saves UTF-16: with a byte-order
    mark it read as "not UTF-8 text (byte 0xff)", without one as "invalid YAML: character
    #x0000 is not allowed", neither saying what the file is or how to save it."""
    Path("ps.yaml").write_bytes(DESTINATION.encode(encoding))
    assert only_problem() == (
        "ps.yaml:1:1: file is UTF-16 text, not UTF-8 (as Windows PowerShell's > and "
        'Notepad\'s "Unicode" save it); save it as UTF-8'
    )


def test_a_document_nested_without_bound_is_refused_not_a_crash() -> None:
    """libyaml composes recursively in C, beyond Python's recursion limit: 100,000 nested
    lists overflowed its stack and killed the process without a word. The load runs in a
    child process, so that a crash fails this test rather than ending the test run."""
    import subprocess
    import sys

    from reconciler.manifest.yaml_file import MAX_NESTING

    depth = 200_000
    write("m.yaml", DESTINATION, "---\nspec: " + "[" * depth + "]" * depth + "\n")
    code = (
        "from pathlib import Path\n"
        "from reconciler.errors import ManifestError\n"
        "from reconciler.manifest import load_manifests\n"
        "try:\n    load_manifests(Path('m.yaml'))\n"
        "except ManifestError as error:\n    print(*error.problems, sep='\\n')\n"
    )
    root = Path(__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    column = len("spec: ") + MAX_NESTING  # the document mapping is the first level
    assert result.stdout.strip() == (
        f"m.yaml:9:{column}: invalid YAML: nested too deeply (over {MAX_NESTING} levels)"
    )


# --- checks across documents ----------------------------------------------------------


def test_duplicate_names_within_a_kind_name_both_locations() -> None:
    write("a.yaml", DESTINATION)
    write("b.yaml", "---\n" + DESTINATION)
    assert only_problem() == (
        "b.yaml:4:18: duplicate Destination name 'prod'; already defined at a.yaml:3:18"
    )


def test_the_same_name_in_different_kinds_is_fine() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: prod}
        spec: {destination: prod, members: {inline: []}}
        """,
    )
    assert list(load_manifests(Path(".")).audiences) == ["prod"]


def test_unknown_destination_lists_the_known_ones() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: staging
          members: {csv: a.csv}
        """,
    )
    assert only_problem() == (
        "m.yaml:13:16: spec.destination: unknown destination 'staging'; known destinations: prod"
    )


def test_a_misspelt_destination_or_trait_mapping_says_what_was_meant() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: TraitMapping
        metadata: {name: crm-fields}
        spec: {fields: {plan: plan}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prdo
          traits: crm-field
          members: {inline: [{email: a@example.com, plan: pro}]}
        """,
    )
    assert problems() == [
        "m.yaml:18:16: spec.destination: unknown destination 'prdo' (did you mean 'prod'?); "
        "known destinations: prod",
        "m.yaml:19:11: spec.traits: unknown trait mapping 'crm-field' (did you mean "
        "'crm-fields'?); known trait mappings: crm-fields",
    ]


def test_a_misspelt_trait_mapping_among_hundreds_names_a_few_not_all() -> None:
    """A repository of 300 mappings: each misspelt reference was a line naming all 300
    (about 3,000 characters), once per audience that made the slip."""
    mappings = "".join(
        f"---\napiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {{name: map-{i:03d}}}\n"
        "spec: {fields: {plan: plan}}\n"
        for i in range(300)
    )
    write(
        "m.yaml",
        DESTINATION,
        mappings,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          traits: mpa-007
          members: {inline: [{email: a@example.com, plan: pro}]}
        """,
    )
    (problem,) = problems()
    assert "unknown trait mapping 'mpa-007' (did you mean 'map-007'?)" in problem
    assert problem.endswith(
        "known trait mappings: map-000, map-001, map-002, map-003, map-004, map-005, map-006, "
        "map-007, map-008, map-009, map-010, map-011, map-012, map-013, map-014, map-015, "
        "map-016, map-017, map-018, map-019 and 280 more"
    )


def test_update_existing_users_only_is_refused_in_an_email_project() -> None:
    # Iterable ignores it there and creates every unknown user a subscribe names: a plan
    # saying "existing users only" would create people. Hybrid and userId honour it.
    audience = """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          members: {csv: a.csv}
          updateExistingUsersOnly: true
        """
    write("m.yaml", DESTINATION.replace("hybrid", "email"), audience)
    assert only_problem() == (
        "m.yaml:15:28: spec.updateExistingUsersOnly: Iterable ignores it in email-based "
        "projects (destination 'prod' is projectType email) and creates every unknown user a "
        "subscribe names; remove it, or list only people Iterable already has"
    )
    for project_type in ("hybrid", "userId"):
        write("m.yaml", DESTINATION.replace("hybrid", project_type), audience)
        assert load_manifests(Path(".")).audiences["a"].spec.updateExistingUsersOnly
    write("m.yaml", DESTINATION.replace("hybrid", "email"), audience.replace("true", "false"))
    assert not load_manifests(Path(".")).audiences["a"].spec.updateExistingUsersOnly


def test_an_invalid_destination_is_still_known_to_its_audiences() -> None:
    write(
        "m.yaml",
        DESTINATION.replace("region: us", "region: usa"),
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec: {destination: prod, members: {csv: a.csv}}
        """,
    )
    assert problems() == [
        "m.yaml:5:11: spec.region: expected one of us, eu, sandbox; got 'usa' (did you mean 'us'?)"
    ]


def test_two_audiences_on_one_list_name_both() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip}
        spec: {destination: prod, members: {csv: a.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip-copy}
        spec:
          destination: prod
          listName: vip
          members: {csv: b.csv}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: VIP}
        spec: {destination: prod, members: {csv: c.csv}}
        """,
    )
    # List names compare case-sensitively, as Iterable's do: VIP is another list.
    assert only_problem() == (
        "m.yaml:19:13: audiences 'vip' and 'vip-copy' both manage the list 'vip' in "
        "destination 'prod'; 'vip' is at m.yaml:11:18"
    )


def test_two_audiences_on_lists_whose_names_read_alike_are_warned_of() -> None:
    """Names differing only in case, spaces, `_` or `-`, an invisible character or Unicode
    form are two lists to Iterable, and two lists that read alike in its web app, where a
    campaign is pointed at a list by its name: each audience's plans are right, and the
    campaign sends to the wrong people. A warning at the second one's line, naming both."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip}
        spec: {destination: prod, listName: VIP customers, members: {csv: a.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip-eu}
        spec:
          destination: prod
          listName: "vip  customers"
          members: {csv: b.csv}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: cafe}
        spec: {destination: prod, listName: "Caf\\u00e9", members: {csv: c.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: cafe-2}
        spec: {destination: prod, listName: "Cafe\\u0301", members: {csv: d.csv}}
        """,
    )
    manifests = load_manifests(Path("m.yaml"))
    assert [str(w) for w in manifests.warnings] == [
        "m.yaml:19:13: audiences 'vip' and 'vip-eu' manage lists 'VIP customers' and "
        "'vip  customers' in destination 'prod', whose names differ only in case, spaces, "
        "`_` or `-`, invisible characters or Unicode form: two lists in Iterable that read "
        "alike in its web app, where a campaign can be pointed at the wrong one; give one "
        "of them another listName ('vip' is at m.yaml:12:37)",
        "m.yaml:30:37: audiences 'cafe' and 'cafe-2' manage lists 'Caf\u00e9' and "
        "'Cafe\u0301' (the same letters, accents composed in one and decomposed in the "
        "other) in destination 'prod', whose names differ only in case, spaces, "
        "`_` or `-`, invisible characters or Unicode form: two lists in Iterable that read "
        "alike in its web app, where a campaign can be pointed at the wrong one; give one "
        "of them another listName ('cafe' is at m.yaml:25:37)",
    ]


def test_list_names_a_minus_sign_tells_apart_are_not_warned_of() -> None:
    """A `-` or `_` between two words is a space to a reader (`high_value_users`,
    `high-value-users`), but one at a word's edge is a sign: 'Grade A-' and 'Grade A',
    'NPS -50' and 'NPS 50' are different lists a campaign is pointed at on purpose. Folded
    alike, validate warned that they read alike and told to rename one."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: grade-a}
        spec: {destination: prod, listName: Grade A, members: {csv: a.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: grade-a-minus}
        spec: {destination: prod, listName: Grade A-, members: {csv: b.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: nps-50}
        spec: {destination: prod, listName: NPS 50, members: {csv: c.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: nps-minus-50}
        spec: {destination: prod, listName: NPS -50, members: {csv: d.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: high-value-users}
        spec: {destination: prod, members: {csv: e.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: hv}
        spec: {destination: prod, listName: high_value__users, members: {csv: f.csv}}
        """,
    )
    manifests = load_manifests(Path("m.yaml"))
    assert [str(w) for w in manifests.warnings] == [
        "m.yaml:37:37: audiences 'high-value-users' and 'hv' manage lists 'high-value-users' "
        "and 'high_value__users' in destination 'prod', whose names differ only in case, "
        "spaces, `_` or `-`, invisible characters or Unicode form: two lists in Iterable that "
        "read alike in its web app, where a campaign can be pointed at the wrong one; give one "
        "of them another listName ('high-value-users' is at m.yaml:31:18)",
    ]
    # The plan's note on a list it creates beside one that reads alike folds names so too.
    assert read_alike("Grade A-") != read_alike("Grade A")
    assert read_alike("Segment_Audience") == read_alike("segment-audience")
    assert read_alike("VIP - EU") == read_alike("vip-eu")  # a dash between spaces


def test_two_audiences_on_one_list_of_two_destinations_naming_one_project() -> None:
    """A second destination with the same host and key names the same project: an audience
    of each on one list name would fight over its members. Another key is another project
    as far as the manifests show."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Destination
        metadata: {name: lifecycle}
        spec: {region: us, projectType: hybrid, apiKey: {env: ITERABLE_API_KEY}}
        ---
        apiVersion: reconciler/v1
        kind: Destination
        metadata: {name: other}
        spec: {region: us, projectType: hybrid, apiKey: {env: OTHER_KEY}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip}
        spec: {destination: prod, members: {csv: a.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip-team}
        spec: {destination: lifecycle, listName: vip, members: {csv: b.csv}}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: vip-other}
        spec: {destination: other, listName: vip, members: {csv: c.csv}}
        """,
    )
    assert only_problem() == (
        "m.yaml:27:42: audiences 'vip' and 'vip-team' both manage the list 'vip' in "
        "destinations 'prod' and 'lifecycle', which name one Iterable project (the same host "
        "and API key); 'vip' is at m.yaml:21:18"
    )


# --- all problems in one pass ---------------------------------------------------------


def test_problems_from_several_files_are_reported_together() -> None:
    write("a.yaml", DESTINATION.replace("region: us", "region: usa"))
    write("b/c.yaml", "apiVersion: reconciler/v1\nkind: [\n")
    Path("b/d.yaml").write_bytes(b"\xff\xfe")
    write(
        "e.yaml",
        """\
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: x}
        spec: {destination: nowhere, members: {csv: x.csv}, colour: blue}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: y}
        spec: {destination: nowhere, members: {csv: y.csv}}
        """,
    )
    found = problems()
    assert [p.split(": ")[0] for p in found] == [
        "a.yaml:5:11",
        "b/c.yaml:3:1",
        "b/d.yaml:1:1",
        "e.yaml:4:53",
        "e.yaml:9:21",
    ]


def test_missing_path() -> None:
    # The default path (`manifests`) run from the wrong directory: say what to give.
    assert only_problem("nowhere") == (
        f"nowhere: manifest path nowhere does not exist (looked from {Path.cwd()}); give the "
        "directory that holds the manifests as the PATH argument"
    )


def test_a_manifest_path_spelt_as_only_macos_reads_it_says_how_it_is_spelt() -> None:
    """A CI workflow written on a Mac (`reconciler plan Manifests`) opens `manifests`
    there; on Linux it was "does not exist" beside a directory that reads the same."""
    write("manifests/d.yaml", DESTINATION)
    assert only_problem("Manifests").startswith(
        "Manifests: manifest path Manifests does not exist (looked from "
        f"{Path.cwd()}): it is spelt manifests (the name differs in case: macOS and Windows "
        "ignore case in file names, Linux (where CI runs) does not); give the directory"
    )


def test_empty_directory() -> None:
    Path("empty").mkdir()
    assert only_problem("empty") == ("empty: no manifest files (*.yaml, *.yml) found in empty")


def test_files_without_documents() -> None:
    write("m/a.yaml", "# nothing yet\n")
    write("m/b.yaml", "---\n---\n")
    assert only_problem("m") == "m: no manifest documents found in m"


def _inline_audience(count: int) -> str:
    members = "".join(f"      - {{email: u{i}@example.com, userId: u-{i}}}\n" for i in range(count))
    return (
        "---\napiVersion: reconciler/v1\nkind: Audience\nmetadata: {name: big}\nspec:\n"
        "  destination: prod\n  members:\n    inline:\n" + members
    )


def test_inline_members_are_located_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading N inline members looks up N positions, not N for each member (which made
    3,000 members take a minute)."""
    from reconciler.manifest.location import YamlPositions
    from reconciler.sources import read_members

    count = 300
    write("m.yaml", DESTINATION, _inline_audience(count))
    audience = load_manifests(Path("m.yaml")).audiences["big"]
    calls = 0
    locate = YamlPositions.locate

    def counting(self: YamlPositions, *args: object, **kwargs: object) -> Location:
        nonlocal calls
        calls += 1
        return locate(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(YamlPositions, "locate", counting)
    result = read_members(audience, "hybrid")
    assert len(result.members) == count
    assert calls <= count + 10
    assert str(audience.member_locations[count - 1]) == f"m.yaml:{15 + count}:9"


def test_manifests_are_parsed_by_libyaml_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """ruamel's pure-Python parser is only the fallback for files the C parser refuses
    (so that messages stay ruamel's): a valid manifest never reaches it."""
    pytest.importorskip("_ruamel_yaml")
    import ruamel.yaml.parser

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pure-Python parser was used")

    write("m.yaml", DESTINATION, _inline_audience(3))
    monkeypatch.setattr(ruamel.yaml.parser.Parser, "__init__", refuse)
    manifests = load_manifests(Path("m.yaml"))
    assert [str(loc) for loc in manifests.audiences["big"].member_locations] == [
        "m.yaml:16:9",
        "m.yaml:17:9",
        "m.yaml:18:9",
    ]


@pytest.mark.parametrize("parser", ["libyaml", "pure"])
def test_a_yaml_1_1_directive_is_read_alike_by_either_parser(
    monkeypatch: pytest.MonkeyPatch, parser: str
) -> None:
    """A file that says `%YAML 1.1` asks for YAML 1.1, where `on` is true and `0777` is 511.
    libyaml's composer (the fast path) ignored the directive and read them as YAML 1.2 (the
    text 'on', 777), where ruamel's pure parser, which reads a file when ruamel.yaml.clib
    is not installed, honours it: the same manifest set a description 'on' on one machine
    and was refused on another, and an inline member's field went out as 'on' or true."""
    if parser == "pure":
        # As without ruamel.yaml.clib: every file is composed by the pure parser.
        monkeypatch.setattr(yaml_file, "_compose_all", lambda yaml, text: yaml.compose_all(text))
    write(
        "m.yaml",
        "%YAML 1.1\n---\n",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          description: on
          members: {inline: [{email: a@example.com, vip: yes, code: 0777}]}
        """,
    )
    assert problems() == [
        "m.yaml:16:16: spec.description: expected a string; got true "
        "(put it in quotes to make it text)"
    ]
    Path("m.yaml").write_text(
        Path("m.yaml").read_text().replace("description: on", "description: 'on'")
    )
    (member,) = load_manifests(Path("m.yaml")).audiences["a"].spec.members.inline or []
    assert not isinstance(member, str)
    assert member.traits == {"vip": True, "code": 511}


def test_a_comment_that_cuts_a_list_name_short_is_warned_of() -> None:
    """`listName: Sale #1` is the list 'Sale' to every YAML reader (` #` starts a comment),
    where whoever wrote it, and a reviewer reading the diff, meant 'Sale #1': apply made
    or took over the list 'Sale' without a word. A comment that starts right after a bare
    listName or description, with no space after its `#`, is now warned of; one written
    as comments are (`# why`) is not."""
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          listName: Sale #1
          description: Spring promo  #vip only
          members: {inline: [a@example.com]}
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: b}
        spec:
          destination: prod
          listName: Summer  # the summer one
          description: "Spring #2"
          members: {inline: [a@example.com]}
        """,
    )
    manifests = load_manifests(Path("m.yaml"))
    assert manifests.audiences["a"].spec.listName == "Sale"
    assert [str(w) for w in manifests.warnings] == [
        "m.yaml:14:13: listName 'Sale' ends where ' #1' starts a YAML comment; put the whole "
        "text in quotes if '#1' belongs to it",
        "m.yaml:15:16: description 'Spring promo' ends where '  #vip only' starts a YAML "
        "comment; put the whole text in quotes if '#vip only' belongs to it",
    ]


def test_a_file_of_many_audiences_is_read_again_once_not_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """How a listName is written (a comment after it, quotes) is read from the file's
    text: read once for the load, as reading it again for each of 2,000 audiences in one
    file took validate from 2 s to 40 s."""
    audiences = "".join(
        f"---\napiVersion: reconciler/v1\nkind: Audience\nmetadata: {{name: a{n}}}\n"
        f"spec:\n  destination: prod\n  listName: List {n} #{n}\n  description: List {n}\n"
        f"  members: {{inline: [a{n}@example.com]}}\n"
        for n in range(50)
    )
    write("m.yaml", DESTINATION, audiences)
    reads: list[Path] = []
    read_text = Path.read_text

    def counted(self: Path, *args: Any, **kwargs: Any) -> str:
        reads.append(self)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    manifests = load_manifests(Path("m.yaml"))
    assert len(manifests.warnings) == 50
    assert reads == [Path("m.yaml")]


def test_one_file_given_says_the_others_were_not_read() -> None:
    """`reconciler plan m/a.yaml`: the destination lives in another file of the directory."""
    write("m/d.yaml", DESTINATION)
    write(
        "m/a.yaml",
        """\
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: churn}
        spec:
          destination: prod
          members: {inline: [a@example.com]}
        """,
    )
    assert only_problem("m/a.yaml") == (
        "m/a.yaml:5:16: spec.destination: unknown destination 'prod'; known destinations: "
        "none are defined (only m/a.yaml was read: give the directory that holds all the "
        "manifests, e.g. `manifests`)"
    )
    load_manifests(Path("m"))  # the directory holds both


def test_a_key_written_one_level_too_high_says_where_it_belongs() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: churn}
        spec:
          destination: prod
          members:
            inline: [a@example.com]
          csv: data/churn.csv
        """,
    )
    assert only_problem().startswith(
        "m.yaml:16:3: unknown key 'csv' in spec (it belongs under spec.members); allowed: "
    )


@pytest.mark.parametrize(
    "pasted", ["0123456789abcdef0123456789ABCDEF", "sklive0123456789abcdefghijk"]
)
def test_a_key_pasted_as_the_variable_name_is_refused_without_echoing_it(pasted) -> None:
    # A valid variable name too: without this, "... is not set" would print the key.
    write("m.yaml", DESTINATION.replace("{env: ITERABLE_API_KEY}", f"{{env: {pasted}}}"))
    found = only_problem()
    assert found.startswith("m.yaml:7:17: spec.apiKey.env: this is the key itself"), found
    assert pasted not in found


def test_a_key_file_in_the_home_of_a_user_this_machine_lacks_is_named_at_its_line() -> None:
    # `~ci/key` (a path from the laptop of user ci, or a typo of `~/`) stopped validate,
    # plan and apply with 'internal error: RuntimeError: Could not determine home
    # directory.': pathlib's expanduser raises for a user this machine does not have.
    write("m.yaml", DESTINATION.replace("{env: ITERABLE_API_KEY}", "{file: ~no-such-user-r23/key}"))
    found = only_problem()
    assert found.startswith("m.yaml:7:18: spec.apiKey.file: ~no-such-user-r23/key starts with "), (
        found
    )
    assert "no user 'no-such-user-r23'" in found, found


@pytest.mark.parametrize(
    "name", ["ITERABLE_API_KEY", "ITERABLE_KEY_PROD_EU_2024", "apiKey", "iterableKeyProduction2024"]
)
def test_variable_names_people_use_are_not_taken_for_keys(name) -> None:
    write("m.yaml", DESTINATION.replace("{env: ITERABLE_API_KEY}", f"{{env: {name}}}"))
    assert load_manifests(Path(".")).destinations["prod"].spec.apiKey.env == name


def test_an_escaped_utf16_pair_is_read_as_the_one_character_json_means() -> None:
    # JSON is YAML, and JSON tools write an emoji as "\ud83d\ude80": YAML's reader gave two
    # lone surrogates, which no request can carry (UTF-8 has no form for them), so an
    # apply failed with an internal error when it sent the list's description.
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          listName: "Launch \\ud83d\\ude80"
          description: "\\ud83d\\udd25 hot"
          members: {inline: [a@example.com]}
        """,
    )
    audience = load_manifests(Path(".")).audiences["a"]
    assert audience.list_name == "Launch 🚀"
    assert audience.spec.description == "🔥 hot"


def test_a_lone_utf16_surrogate_is_named_with_its_line() -> None:
    write(
        "m.yaml",
        DESTINATION,
        """\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {name: a}
        spec:
          destination: prod
          description: "half \\ud83d of an emoji"
          members: {inline: [a@example.com]}
        """,
    )
    assert only_problem() == (
        "m.yaml:14:16: invalid YAML: \\ud83d is half of a UTF-16 surrogate pair, which is "
        "no character on its own; write the character itself (or \\U0001F600 for U+1F600)"
    )


def test_a_very_long_name_is_quoted_cut_with_its_length() -> None:
    """A 70,000-character destination, trait mapping or key came back whole in its error,
    a screen of one letter per problem: it is cut after 300 characters and its length
    said; names of ordinary length are quoted whole (the tests above)."""
    long_key, long_dest, long_traits = "k" * 70_000, "d" * 70_001, "t" * 70_002
    write(
        "m.yaml",
        # A key beyond YAML's 1,024 characters for a plain one is written as an explicit one.
        DESTINATION + f"  ? {long_key}\n  : red\n",
        f"""\
        ---
        apiVersion: reconciler/v1
        kind: Audience
        metadata: {{name: a}}
        spec:
          destination: {long_dest}
          traits: {long_traits}
          members: {{inline: [{{email: a@example.com, plan: pro}}]}}
        """,
    )
    found = problems()
    assert len(found) == 3, found
    for problem, letter, length in zip(found, "kdt", ("70,000", "70,001", "70,002"), strict=True):
        assert len(problem) < 600, problem[:400]
        assert f"'{letter * 300}...' ({length} characters)" in problem
    assert found[0].startswith("m.yaml:8:5: unknown key 'kkk")
    assert "spec.destination: unknown destination 'ddd" in found[1]
    assert "spec.traits: unknown trait mapping 'ttt" in found[2]
