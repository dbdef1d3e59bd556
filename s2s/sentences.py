"""A line of text as sentences: the app and `s2s evaluate --by-sentence` translate a paragraph one sentence
at a time, because the models learned from single sentences and one long input loses phrases."""
from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s+[\"'“‘«(¿¡]*[A-ZÀ-ÖØ-Þ0-9])")
ABBREVIATIONS = frozenset("mr mrs ms dr prof st mt jr sr vs etc e.g i.e z.b bzw usw ca nr no mme mlle fig approx"
                          .split())  # no sentence ends after "Dr."


def split_sentences(text: str) -> list[str]:
    """One line of text as sentences: it ends after . ! ? or … (and closing quotes) where the next word starts
    with a capital or a digit, but not after an abbreviation such as Mr. or z.B. or an initial."""
    sentences, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        words = text[start:end.start()].split()
        last = words[-1].lower().strip("(\"'") if words else ""
        if end.group().startswith(".") and (last in ABBREVIATIONS or len(last) == 1 and last.isalpha()):
            continue
        sentences.append(text[start:end.end()].strip())
        start = end.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]
