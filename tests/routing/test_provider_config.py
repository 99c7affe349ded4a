"""A provider's configuration is refused when it could not be sent as configured: a base URL that
is not http(s) with a host, a header whose value breaks the line (it would write another header
or another request) or whose name is not a token."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from minitoolai.settings import ProviderConfig


@pytest.mark.parametrize(
    "url", ["ftp://example.com/v1", "example.com/v1", "http://", "http:///v1", "https://a b/v1"]
)
def test_a_base_url_is_http_or_https_with_a_host(url: str) -> None:
    with pytest.raises(ValidationError, match="base_url"):
        ProviderConfig(base_url=url)


@pytest.mark.parametrize(
    "headers",
    [{"X-Team": "a\r\nX-Admin: yes"}, {"X-Team": "a\nb"}, {"X-Team": "a\0"}, {"Bad Name": "x"}],
)
def test_a_header_is_one_line_with_a_token_name(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="header"):
        ProviderConfig(base_url="https://api.example.com/v1", headers=headers)


def test_what_providers_use_is_accepted() -> None:
    config = ProviderConfig(
        base_url="https://my-resource.openai.azure.com/openai/deployments/gpt-4o",
        headers={"api-key": "k", "OpenAI-Organization": "org-1", "X-Title": "My app: prod"},
        query={"api-version": "2024-10-21"},
    )
    assert config.headers["X-Title"] == "My app: prod"
    assert ProviderConfig(base_url="http://[::1]:8080/v1").base_url == "http://[::1]:8080/v1"
