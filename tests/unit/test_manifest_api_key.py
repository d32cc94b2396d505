"""resolve_api_key: keys come from the environment or a file, and errors never show them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.manifest import (
    ApiKeyRef,
    Destination,
    DestinationSpec,
    Location,
    resolve_api_key,
)

SECRET = "sk_test_0123456789abcdef"


def destination(base_dir: Path, api_key: ApiKeyRef | None, region: str = "us") -> Destination:
    spec = DestinationSpec.model_validate(
        {
            "region": region,
            "projectType": "hybrid",
            "apiKey": None if api_key is None else api_key.model_dump(exclude_none=True),
        }
    )
    return Destination(
        name="prod", spec=spec, location=Location("m.yaml", 3, 18), base_dir=base_dir
    )


def test_env_reference_reads_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITERABLE_API_KEY", f"  {SECRET}\n")
    assert resolve_api_key(destination(tmp_path, ApiKeyRef(env="ITERABLE_API_KEY"))) == SECRET


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_or_empty_variable_names_variable_and_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("ITERABLE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("ITERABLE_API_KEY", value)
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(destination(tmp_path, ApiKeyRef(env="ITERABLE_API_KEY")))
    message = str(raised.value)
    assert "ITERABLE_API_KEY" in message
    assert "'prod'" in message


def test_file_reference_is_relative_to_the_manifest_directory(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text(SECRET + "\n", encoding="utf-8")
    found = resolve_api_key(destination(tmp_path, ApiKeyRef(file="secrets/key")))
    assert found == SECRET


def test_absolute_file_reference(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET, encoding="utf-8")
    elsewhere = tmp_path / "manifests"
    assert resolve_api_key(destination(elsewhere, ApiKeyRef(file=str(key_file)))) == SECRET


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(destination(tmp_path, ApiKeyRef(file="nope.key")))
    message = str(raised.value)
    assert str(tmp_path / "nope.key") in message
    assert "'prod'" in message


@pytest.mark.parametrize("content", [b"", b"\n  \n", b"\xff" + SECRET.encode()])
def test_empty_or_unreadable_file_is_refused_without_its_content(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "key").write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(destination(tmp_path, ApiKeyRef(file="key")))
    assert "key" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_sandbox_without_a_key_has_none(tmp_path: Path) -> None:
    assert resolve_api_key(destination(tmp_path, None, region="sandbox")) is None
