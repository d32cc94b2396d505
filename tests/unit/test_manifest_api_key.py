"""resolve_api_key: keys come from the environment or a file, and errors never show them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.connect import TRUSTED_BASE_URLS, check_base_url
from reconciler.errors import ConfigError
from reconciler.iterable import REGION_URLS
from reconciler.manifest import (
    ApiKeyRef,
    Destination,
    DestinationSpec,
    Location,
    load_manifests,
    resolve_api_key,
)
from reconciler.manifest.api_key import MAX_KEY_FILE_BYTES

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


def test_unset_variable_names_the_manifest_line_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newcomer's first run: the error points at the manifest that names the variable and
    says how to give it a value."""
    monkeypatch.delenv("ITERABLE_API_KEY", raising=False)
    (tmp_path / "d.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: prod}\nspec:\n"
        "  region: us\n  projectType: hybrid\n  apiKey: {env: ITERABLE_API_KEY}\n",
        encoding="utf-8",
    )
    loaded = load_manifests(tmp_path / "d.yaml").destinations["prod"]
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(loaded)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'd.yaml'}:7:")
    assert "export ITERABLE_API_KEY=" in message


def test_a_variable_set_in_another_case_is_named_without_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`{env: iterable_api_key}` works on Windows, where names have no case, and failed in
    Linux CI with "iterable_api_key is not set" beside a set ITERABLE_API_KEY."""
    monkeypatch.setenv("ITERABLE_API_KEY", SECRET)
    monkeypatch.delenv("iterable_api_key", raising=False)
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(destination(tmp_path, ApiKeyRef(env="iterable_api_key")))
    message = str(raised.value)
    assert "environment variable iterable_api_key is not set (ITERABLE_API_KEY is set:" in message
    assert "spell it in the manifest as it is set" in message
    assert SECRET not in message
    monkeypatch.delenv("ITERABLE_API_KEY")
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(destination(tmp_path, ApiKeyRef(env="iterable_api_key")))
    assert "iterable_api_key is not set; it must hold" in str(raised.value)


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


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbf" + SECRET.encode() + b"\r\n",  # Notepad's "UTF-8 with BOM"
        (SECRET + "\r\n").encode("utf-16"),  # Windows PowerShell's `"key" > file`
        (SECRET + "\n").encode("utf-16-be"),
    ],
    ids=["utf-8-bom", "utf-16-le-bom", "utf-16-be-no-bom-is-refused"],
)
def test_a_key_file_saved_by_windows_tools_is_read_as_its_key(
    tmp_path: Path, content: bytes
) -> None:
    """A key file with a UTF-8 byte-order mark was refused for "characters an API key
    cannot have ... check it was copied whole", and a UTF-16 one as "not UTF-8 text",
    though each held the key whole. Without a BOM, UTF-16 stays refused (not guessed)."""
    (tmp_path / "key").write_bytes(content)
    ref = destination(tmp_path, ApiKeyRef(file="key"))
    if content.startswith(b"\x00"):
        with pytest.raises(ConfigError, match="has characters an API key cannot have"):
            resolve_api_key(ref)
    else:
        assert resolve_api_key(ref) == SECRET


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


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "fifo", "directory"])
def test_a_key_file_that_is_no_regular_file_is_refused_without_reading(
    tmp_path: Path, special: str
) -> None:
    if special == "fifo":
        os.mkfifo(tmp_path / "fifo")  # nobody writes: a blocking open would hang here
        special = str(tmp_path / "fifo")
    elif special == "directory":
        (tmp_path / "directory").mkdir()
        special = str(tmp_path / "directory")
    with _fails_rather_than_hangs(), pytest.raises(ConfigError) as raised:
        resolve_api_key(destination(tmp_path, ApiKeyRef(file=special)))
    assert str(raised.value).startswith("m.yaml:3:18: destination 'prod'")
    assert f"API key file {special} is not a regular file" in str(raised.value)


@contextmanager
def _fails_rather_than_hangs(seconds: int = 10) -> Iterator[None]:
    """A FIFO opened without O_NONBLOCK waits for a writer forever: the test would hang
    the suite where it should fail. An alarm interrupts the open and raises."""

    def hung(signum: int, frame: object) -> None:
        raise AssertionError(f"still blocked after {seconds} s: the FIFO was opened blocking")

    before = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)


def test_a_key_file_larger_than_a_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(SECRET + "\n" + "x" * MAX_KEY_FILE_BYTES, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"larger than {MAX_KEY_FILE_BYTES} bytes") as raised:
        resolve_api_key(destination(tmp_path, ApiKeyRef(file="key")))
    assert SECRET not in str(raised.value)
    (tmp_path / "key").write_text(SECRET + "\n", encoding="utf-8")
    assert resolve_api_key(destination(tmp_path, ApiKeyRef(file="key"))) == SECRET


def with_base_url(base_dir: Path, base_url: str, region: str = "us") -> Destination:
    spec = DestinationSpec.model_validate(
        {"region": region, "projectType": "hybrid", "apiKey": {"file": "missing-key"}}
        | {"baseUrl": base_url}
    )
    return Destination(
        name="prod", spec=spec, location=Location("m.yaml", 3, 18), base_dir=base_dir
    )


@pytest.mark.parametrize(
    ("region", "base_url"),
    [
        ("us", "https://attacker.example"),
        ("us", "https://api.iterable.com.attacker.example"),
        ("us", "http://api.iterable.com"),  # not the same origin: the key would go in clear
        ("eu", "https://api.iterable.com:8443"),
        ("sandbox", "http://10.0.0.5:8080"),
        ("us", "http://169.254.169.254/"),
    ],
)
def test_a_base_url_elsewhere_is_refused_before_the_key_is_read(
    tmp_path: Path, region: str, base_url: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        check_base_url(with_base_url(tmp_path, base_url, region), environ={})
    message = str(raised.value)
    assert message.startswith("m.yaml:3:18: destination 'prod': the API key is not sent")
    assert TRUSTED_BASE_URLS in message


@pytest.mark.parametrize(
    ("region", "base_url", "other"),
    [("us", "https://api.eu.iterable.com", "eu"), ("eu", "https://api.iterable.com/api", "us")],
)
def test_the_other_data_center_as_base_url_says_to_set_the_region(
    tmp_path: Path, region: str, base_url: str, other: str
) -> None:
    # A key works only in its project's data center: the region is what is wrong, and
    # trusting the other host would leave it so (and skip the EU's project-type check).
    with pytest.raises(ConfigError) as raised:
        check_base_url(with_base_url(tmp_path, base_url, region), environ={})
    assert str(raised.value).endswith(
        f"is Iterable's {other} host: for a project in that data center set region: "
        f"{other} and no baseUrl"
    )
    with pytest.raises(ConfigError) as raised:
        check_base_url(with_base_url(tmp_path, "https://attacker.example", region), environ={})
    assert "data center" not in str(raised.value)


@pytest.mark.parametrize(
    ("region", "base_url", "other"),
    [
        ("eu", "https://api.iterable.com", "us"),
        ("us", "https://api.eu.iterable.com/", "eu"),
        ("sandbox", "https://api.eu.iterable.com", "eu"),
    ],
)
def test_the_other_data_center_is_refused_even_when_listed_as_trusted(
    tmp_path: Path, region: str, base_url: str, other: str
) -> None:
    # A team with a US and an EU destination may list both of Iterable's hosts in the
    # trusted list; an EU destination's key still never goes to the US host (where it is
    # refused, and the EU's no-email-projects check would be skipped), nor the other way.
    trusted = {TRUSTED_BASE_URLS: "https://api.iterable.com https://api.eu.iterable.com"}
    with pytest.raises(ConfigError) as raised:
        check_base_url(with_base_url(tmp_path, base_url, region), trusted)
    assert str(raised.value).endswith(
        f"is Iterable's {other} host: for a project in that data center set region: "
        f"{other} and no baseUrl"
    )
    check_base_url(with_base_url(tmp_path, REGION_URLS[other], other), trusted)


@pytest.mark.parametrize(
    ("region", "base_url", "trusted"),
    [
        ("us", "https://api.iterable.com", ""),
        ("eu", "https://api.eu.iterable.com/", ""),
        ("us", "http://127.0.0.1:8080", ""),
        ("sandbox", "http://localhost:9000/api", ""),
        ("us", "http://[::1]:8080", ""),
        ("us", "https://proxy.corp.example/iterable", "https://proxy.corp.example"),
        ("eu", "http://proxy:3128", "https://other.example, http://proxy:3128"),
    ],
)
def test_the_region_this_computer_and_trusted_origins_are_allowed(
    tmp_path: Path, region: str, base_url: str, trusted: str
) -> None:
    check_base_url(with_base_url(tmp_path, base_url, region), {TRUSTED_BASE_URLS: trusted})
