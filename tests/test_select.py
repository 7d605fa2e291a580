import pytest

from nlpress.errors import NlpressError
from nlpress.select import match_names, select

NAMES = [
    "encoder.layer.0.attention.q",
    "encoder.layer.0.ffn.up",
    "encoder.layer.1.ffn.up",
    "classifier",
]


def test_exact_and_regex():
    assert match_names(NAMES, ["classifier"]) == ["classifier"]
    assert match_names(NAMES, ["re:.*ffn.*"]) == NAMES[1:3]


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(NlpressError, match="matches no layer"):
        match_names(NAMES, ["re:.*decoder.*"])


def test_bad_regex_is_an_error():
    with pytest.raises(NlpressError, match="bad regular expression"):
        match_names(NAMES, ["re:("])


def test_select_targets_minus_ignore():
    assert select(NAMES, ["re:encoder.*"], ["re:.*layer\\.1.*"]) == NAMES[:2]
    assert select(NAMES, None, []) == NAMES
