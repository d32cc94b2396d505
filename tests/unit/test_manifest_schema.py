"""manifest_json_schema: a valid draft 2020-12 schema that agrees with the loader."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from reconciler.errors import ManifestError
from reconciler.manifest import load_manifests, manifest_json_schema

EXAMPLE = """\
apiVersion: reconciler/v1
kind: Destination
metadata: {name: prod}
spec:
  region: us
  projectType: hybrid
  apiKey: {env: ITERABLE_API_KEY}
  baseUrl: http://127.0.0.1:8080
---
apiVersion: reconciler/v1
kind: Audience
metadata: {name: churn-risk}
spec:
  destination: prod
  listName: Churn risk
  description: Users likely to churn
  members:
    csv: data/churn_risk.csv
    email: email
    userId: user_id
  updateExistingUsersOnly: false
  unsubscribe: {campaignId: 1234, channelUnsubscribe: false}
---
apiVersion: reconciler/v1
kind: Audience
metadata: {name: vip}
spec:
  destination: prod
  members:
    inline:
      - alice@example.com
      - {email: bob@example.com, userId: u-2}
      - {userId: u-3, plan: gold}
"""

BAD_DESTINATION_SPECS: list[dict[str, Any]] = [
    {"region": "usa"},
    {"apiKey": "sk_live_literal"},
    {"apiKey": {"env": "A", "file": "b"}},
    {"apiKey": None},
    {"colour": "red"},
    {"region": "eu", "projectType": "email"},
    {"baseUrl": "ftp://example.com"},
]


def documents(text: str) -> list[Any]:
    return list(YAML(typ="safe").load_all(io.StringIO(text)))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = manifest_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_schema_declares_its_dialect() -> None:
    assert manifest_json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_accepts_the_documented_example(validator: Draft202012Validator) -> None:
    for document in documents(EXAMPLE):
        assert list(validator.iter_errors(document)) == []


def test_the_loader_accepts_the_same_example(tmp_path: Path) -> None:
    (tmp_path / "example.yaml").write_text(EXAMPLE, encoding="utf-8")
    manifests = load_manifests(tmp_path)
    assert list(manifests.audiences) == ["churn-risk", "vip"]


@pytest.mark.parametrize("bad", BAD_DESTINATION_SPECS)
def test_schema_rejects_a_bad_destination(
    validator: Draft202012Validator, bad: dict[str, Any]
) -> None:
    destination = documents(EXAMPLE)[0]
    destination["spec"].update(bad)
    assert list(validator.iter_errors(destination)) != []


@pytest.mark.parametrize("bad", BAD_DESTINATION_SPECS)
def test_the_loader_rejects_what_the_schema_rejects(tmp_path: Path, bad: dict[str, Any]) -> None:
    destination = documents(EXAMPLE)[0]
    destination["spec"].update(bad)
    with (tmp_path / "d.yaml").open("w", encoding="utf-8") as stream:
        YAML(typ="safe").dump(destination, stream)
    with pytest.raises(ManifestError):
        load_manifests(tmp_path)


@pytest.mark.parametrize(
    "document",
    [
        {"apiVersion": "reconciler/v2", "kind": "Audience"},
        {"kind": "TraitMapping", "spec": {}},
        {"spec": {"members": {"inline": [], "csv": "a.csv"}}},
        {"spec": {"members": {"inline": [{"plan": "gold"}]}}},
        {"spec": {"members": {"inline": [42]}}},
        {"spec": {"updateExistingUsersOnly": "yes"}},
        {"metadata": {"name": "has spaces"}},
    ],
)
def test_schema_rejects_a_bad_audience(
    validator: Draft202012Validator, document: dict[str, Any]
) -> None:
    audience = documents(EXAMPLE)[2]
    for key, value in document.items():
        if isinstance(value, dict) and isinstance(audience.get(key), dict):
            audience[key].update(value)
        else:
            audience[key] = value
    assert list(validator.iter_errors(audience)) != []
