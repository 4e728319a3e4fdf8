"""Where the token may go (https; plain http only to loopback), Meta's hosts by parsed name, and what is kept
of an endpoint's answer (capped, no control characters, secrets and identifiers redacted)."""

from __future__ import annotations

import pytest

from activation.endpoint import (
    MAX_SERVER_TEXT,
    EndpointError,
    check_graph_url,
    is_meta_host,
    sanitize_server_text,
    sanitize_trace_id,
)

TOKEN = "EAABsecrettokenvalue123"


@pytest.mark.parametrize(
    "url",
    ["https://graph.facebook.com", "http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787",
     "https://proxy.example.com/meta"],
)  # fmt: skip
def test_https_anywhere_and_plain_http_to_loopback_are_allowed(url):
    """The sandbox on loopback may be plain http; everything else is https."""
    assert check_graph_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://203.0.113.9", "plain http to 203.0.113.9"),
        ("http://graph.facebook.com", "plain http"),
        ("http://127.0.0.1.nip.io", "plain http"),
        ("ftp://127.0.0.1", "scheme and host"),
        ("https://user:pw@graph.facebook.com", "credentials"),
        ("https://graph.facebook.com/?access_token=x", "query"),
        ("graph.facebook.com", "scheme and host"),
        ("https://graph.facebook.com:abc", "not a valid URL"),
    ],
)
def test_token_never_goes_over_plain_http_or_odd_urls(url, why):
    """Plain http off loopback (the token would cross the network in clear) and malformed URLs are refused."""
    with pytest.raises(EndpointError, match=why):
        check_graph_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://GRAPH.FACEBOOK.COM", "https://graph.facebook.com.", "https://graph-video.facebook.com",
     "https://sandbox@graph.facebook.com", "https://graph.beta.facebook.com/v26.0", "https://www.fb.com"],
)  # fmt: skip
def test_meta_hosts_are_recognized_by_parsed_name_case_insensitively(url):
    """Upper case, a trailing dot, userinfo or another Meta host do not slip past the --now guard."""
    assert is_meta_host(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8787", "https://graph.facebook.com.evil.example", "https://notfacebook.com"]
)
def test_other_hosts_are_not_meta(url):
    """A look-alike host is not Meta (and a substring test would have been fooled)."""
    assert not is_meta_host(url)


def test_server_text_is_capped_stripped_and_redacted():
    """Control characters, the token, emails, phones with or without +, IPv4/IPv6 are removed; length capped."""
    text = (
        f"bad\x1b[31m event\r\nfor {TOKEN} jane@example.com 4155550199 (415) 555-0199 +44 7911 123456 "
        "from 203.0.113.9 and 2001:db8::1 code 100 subcode 2804003 v26.0 at 12:30:45 " + "x" * 5000
    )
    clean = sanitize_server_text(text, [TOKEN])
    assert len(clean) <= MAX_SERVER_TEXT
    for leak in (TOKEN, "jane@", "4155550199", "555-0199", "7911", "203.0.113.9", "2001:db8", "\x1b", "\n"):
        assert leak not in clean
    for kept in ("bad", "code 100 subcode 2804003", "v26.0", "12:30:45"):
        assert kept in clean


def test_trace_ids_keep_metas_shape_only():
    """A Meta-shaped fbtrace_id is kept; one carrying the token, a hash or odd characters is dropped."""
    assert sanitize_trace_id("AbC_12-xyZ") == "AbC_12-xyZ"
    assert sanitize_trace_id(TOKEN, [TOKEN]) is None
    assert sanitize_trace_id("a" * 64) is None
    assert sanitize_trace_id("x\nforged line") is None
    assert sanitize_trace_id(None) is None
