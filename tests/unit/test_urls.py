"""util.urls: the URL-sanitising rule every text that may quote a URL goes through."""

from __future__ import annotations

from notraining_agent.util.urls import error_text, scrub_urls, shown_url


def test_shown_url_drops_credentials_query_and_fragment() -> None:
    """A shown URL loses what may carry a secret; an unparsable one is not echoed."""
    assert shown_url("https://u:p@h/a.png?X-Goog-Signature=secret#f") == "https://h/a.png"
    assert shown_url("http://[") == "<unparsable URL>"


def test_scrub_urls_drops_query_fragment_and_credentials_of_every_url() -> None:
    """Every URL inside a text loses what may carry a secret; the rest of the text stays."""
    text = (
        "0, message='Invalid header', url='https://u:p@a.test/x.zip?X-Goog-Signature=ab#f' "
        "then (http://b.test/y?sig=cd)"
    )
    assert scrub_urls(text) == (
        "0, message='Invalid header', url='https://a.test/x.zip' then (http://b.test/y"
    )


def test_error_text_names_the_class_and_scrubs_the_message() -> None:
    """An exception becomes ``Class: message`` with its URLs shown, never signed."""
    exc = ValueError("bad answer from https://h/a?X-Goog-Signature=s")
    assert error_text(exc) == "ValueError: bad answer from https://h/a"
