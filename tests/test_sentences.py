import pytest

from s2s.sentences import split_sentences


@pytest.mark.parametrize("text, sentences", [
    ("He met Mr. Brown at 3.30 p.m. today. It rained.", ["He met Mr. Brown at 3.30 p.m. today.", "It rained."]),
    ("Wo ist der Bahnhof? Ich habe mich z.B. verlaufen!", ["Wo ist der Bahnhof?", "Ich habe mich z.B. verlaufen!"]),
    ('« Tu viens ? » Oui. 12 personnes attendent…', ["« Tu viens ? » Oui.", "12 personnes attendent…"]),
    ("J. R. R. Tolkien wrote it.", ["J. R. R. Tolkien wrote it."]),
    ("no capital. so one sentence", ["no capital. so one sentence"]),
    ("", []),
    ("   ", []),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences
