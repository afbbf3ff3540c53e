"""The origins that may frame a merchant's card fields, without a database."""

import pytest

from bastion.merchants.domain import normalized_origin
from bastion.merchants.errors import OriginInvalid


@pytest.mark.parametrize(
    ("typed", "origin"),
    [
        ("https://shop.example", "https://shop.example"),
        ("https://Shop.Example:443/", "https://shop.example"),
        ("https://shop.example:8443", "https://shop.example:8443"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        # As browsers send it in `Origin`: an international name in its ASCII form.
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origins_are_normalized(typed: str, origin: str) -> None:
    assert normalized_origin(typed, livemode=False) == origin
    if origin.startswith("https://"):
        assert normalized_origin(typed, livemode=True) == origin


@pytest.mark.parametrize(
    "typed",
    ["http://localhost:3000", "http://127.0.0.1:8000", "http://[::1]:3000", "HTTP://LOCALHOST", "http://localhost.:3000"],
)
def test_live_mode_takes_https_pages_only(typed: str) -> None:
    """A page on plain http, even on this machine, never frames live card fields."""
    with pytest.raises(OriginInvalid) as refused:
        normalized_origin(typed, livemode=True)
    assert (refused.value.code, refused.value.param) == ("origin_invalid", "origin")


@pytest.mark.parametrize(
    "typed",
    [
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://localhost@evil.example",
        "http://evil.example#@localhost",
        "http://0x7f000001",
        "http://127.1",
    ],
)
def test_what_only_looks_like_localhost_is_not_taken_as_it(typed: str) -> None:
    with pytest.raises(OriginInvalid):
        normalized_origin(typed, livemode=False)


@pytest.mark.parametrize(
    "typed",
    [
        "http://shop.example",
        "https://shop.example/checkout",
        "https://user@shop.example",
        "shop.example",
        "https://shop.example:99999",
        "https://shop.example?x=1",
    ],
)
def test_what_is_not_an_https_origin_is_refused_by_name(typed: str) -> None:
    for livemode in (False, True):
        with pytest.raises(OriginInvalid) as refused:
            normalized_origin(typed, livemode=livemode)
        assert (refused.value.code, refused.value.param) == ("origin_invalid", "origin")


@pytest.mark.parametrize(
    "typed",
    [
        "https://*.shop.example",
        "https://shop.example;script-src",
        "https://shop example",
        'https://"shop.example',
        "https://shop.example,https://other.example",
        "https://-shop.example",
        "https://shop..example",
        "https://shop_1.example",
    ],
)
def test_what_could_widen_frame_ancestors_is_refused(typed: str) -> None:
    """The origins go into the card fields' `frame-ancestors`: one host each, nothing else."""
    for livemode in (False, True):
        with pytest.raises(OriginInvalid) as refused:
            normalized_origin(typed, livemode=livemode)
        assert (refused.value.code, refused.value.param) == ("origin_invalid", "origin")
