"""The flow's one redaction: what it masks, and what it leaves readable."""

from __future__ import annotations

import pytest

from flows.ecommerce.load import failed
from flows.ecommerce.redact import redact, secrets_of, shown_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:hunter2@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("clone https://ghp_abcdef123456@github.com/a/b.git", "clone https://***@github.com/a/b.git"),
        ("https://h/f.csv?X-Amz-Signature=abc123&v=1", "https://h/f.csv?X-Amz-Signature=***&v=1"),
        ("postgresql://u@db/x?sslmode=require&password=pw12", "postgresql://u@db/x?sslmode=require&password=***"),
        ("s3://bucket/2019-Oct.csv", "s3://bucket/2019-Oct.csv"),  # nothing secret: unchanged
        ("2019-Oct.csv: line 3: bad price", "2019-Oct.csv: line 3: bad price"),
    ],
)
def test_passwords_tokens_and_secret_query_parameters_are_masked_and_the_rest_stays(text, expected):
    assert redact(text) == expected


def test_what_a_driver_echoes_of_a_malformed_url_is_masked_with_the_urls_secrets():
    url = "postgresql://u:hun%zz@db/x"
    echoed = 'invalid percent-encoded token: "hun%zz" in postgresql://u:hun%zz@db/x'
    assert "hun" not in redact(echoed, secrets_of(url))


def test_a_secret_value_that_is_not_a_url_is_never_shown():
    assert shown_url("hunter2-no-colon") == "(a value that is not a URL)"
    assert "hunter2" not in redact("could not parse 'hunter2-no-colon'", secrets_of("hunter2-no-colon"))


def test_a_failed_files_summary_names_the_source_without_its_credentials():
    summary = failed("https://u:pw-1234@h/2019-Oct.csv?sig=s3cr3t", ValueError("https://u:pw-1234@h/x: 403"))
    assert "pw-1234" not in str(summary)
    assert "s3cr3t" not in str(summary)
