"""s2s.words: which words the coverage hint may flag."""
import pytest

from s2s.words import is_content_word


@pytest.mark.parametrize("word, lang, content", [
    ("newspaper", "en", True), ("The", "en", False), ("the.", "en", False), (".", "en", False),
    ("o'clock", "en", True), ("don't", "en", True), ("not", "en", True), ("seven", "en", True), ("7", "en", True),
    ("die", "de", False), ("Zeitung", "de", True), ("nicht", "de", True), ("l'année", "fr", True),
    ("j'ai", "fr", False), ("pas", "fr", True), ("son", "en", True), ("son", "fr", False), ("die", "", False),
])
def test_content_words(word, lang, content):
    assert is_content_word(word, lang) is content
