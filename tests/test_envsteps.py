"""Env-step counts: the one format people read (``fmt``) and the forms a flag accepts (``parse``)."""

from __future__ import annotations

import pytest

from rewardgen.envsteps import fmt, parse


@pytest.mark.parametrize("n, shown", [
    (0, "0"), (768, "768"), (999, "999"), (1000, "1k"), (2048, "2.05k"), (12_288, "12.3k"), (30_720, "30.7k"),
    (300_000, "300k"), (999_950, "1M"), (1_000_000, "1M"), (1_536_000, "1.54M"), (2_500_000_000, "2.5B"),
    (5123.7, "5.12k"), (None, "-"),
])
def test_one_format_for_every_count(n, shown):
    assert fmt(n) == shown


@pytest.mark.parametrize("text, n", [
    ("100000", 100_000), ("100_000", 100_000), ("100k", 100_000), ("100K", 100_000), ("1.5M", 1_500_000),
    ("1.5m", 1_500_000), ("1e5", 100_000), ("2.5E6", 2_500_000), (" 300k ", 300_000), (".5k", 500), ("1B", 10**9),
])
def test_parse_takes_what_people_type(text, n):
    assert parse(text) == n


@pytest.mark.parametrize("text, says", [
    ("abc", "such as 100000"), ("", "such as"), ("1.5", "not a whole number"), ("1e-3", "not a whole number"),
    ("0", "positive"), ("-5", "such as"), ("1e5k", "such as"), ("100__000", "such as"), ("nan", "such as"),
    ("inf", "such as"), ("0x10", "such as"), ("1e13", "more than 1e12"), ("1e999999999", "such as"),
])
def test_parse_refuses_junk_with_a_reason(text, says):
    with pytest.raises(ValueError, match=says.replace(".", r"\.")):
        parse(text)


def test_what_fmt_prints_parses_back_to_the_same_display():
    for n in (768, 2048, 30_720, 300_000, 1_536_000):
        assert fmt(parse(fmt(n))) == fmt(n)
