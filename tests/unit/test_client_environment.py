"""iterable/environment.py: certificate and proxy settings from the environment, wrong
ones said as the user's setting (naming the variable, never a proxy's password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.iterable.environment import (
    PROXY_VARIABLES,
    http_client,
    proxy_variables,
    through_proxy,
    tls_context,
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_a_missing_certificate_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "corp-ca.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    with pytest.raises(ConfigError) as caught:
        tls_context()
    message = str(caught.value)
    assert message.startswith(
        f"cannot load the certificate authorities SSL_CERT_FILE names ({missing})"
    )
    assert message.endswith("correct SSL_CERT_FILE or unset it")


def test_a_proxy_that_is_no_url_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", "http://user:s3cret@proxy:port")
    assert proxy_variables() == "https_proxy"
    with pytest.raises(ConfigError) as caught:
        http_client(base_url="https://api.iterable.com")
    assert "(https_proxy) is not a URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_request_through_a_proxy_says_so_unless_no_proxy_excepts_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert proxy_variables() == "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY"  # none set
    with http_client(base_url="https://api.iterable.com") as direct:
        assert through_proxy(direct) == ""
    monkeypatch.setenv("HTTPS_PROXY", "http://user:s3cret@proxy.example:3128")
    with http_client(base_url="https://api.iterable.com") as proxied:
        said = through_proxy(proxied)
    assert said.startswith(" through the proxy HTTPS_PROXY names")
    assert "s3cret" not in said and "proxy.example" not in said
    monkeypatch.setenv("NO_PROXY", "api.iterable.com")
    with http_client(base_url="https://api.iterable.com") as excepted:
        assert through_proxy(excepted) == ""
