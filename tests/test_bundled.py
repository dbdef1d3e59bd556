"""Smoke test of every committed checkpoint: it loads strictly, really translates, and has a model card."""
from pathlib import Path

import pytest

from s2s.api import DecodeOptions, Translator

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = sorted(p.name for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())
# One sentence per bundled model, and words its translation must contain (any one of each group).
PROBES = {
    "en-de": ("My sister has two cats.", [("Schwester",), ("Katzen",)]),
    "de-en": ("Meine Schwester hat zwei Katzen.", [("sister",), ("cats",)]),
    "en-fr": ("My sister has two cats.", [("sœur",), ("chats",)]),
    "fr-en": ("Ma sœur a deux chats.", [("sister",), ("cats",)]),
    "en-de-multi30k": ("A man is riding a bicycle.", [("Mann",), ("Fahrrad",)]),
    "en-fr-tatoeba": ("My sister has two cats.", [("sœur",), ("chats",)]),
}


def test_every_folder_has_a_probe():
    assert FOLDERS and set(FOLDERS) <= set(PROBES), f"add a probe for {sorted(set(FOLDERS) - set(PROBES))}"


@pytest.mark.parametrize("name", FOLDERS)
def test_bundled_checkpoint_translates(name):
    folder = ROOT / "checkpoints" / name
    translator = Translator.load(folder, device="cpu")
    sentence, expected = PROBES[name]
    for options in (DecodeOptions(), DecodeOptions(method="beam", beam_size=5)):
        trace = translator.translate(sentence, options)
        assert trace.target_pieces[-1] == "</s>"
        missing = [group for group in expected if not any(word in trace.translation for word in group)]
        assert not missing, f"{name}: {sentence!r} -> {trace.translation!r} lacks {missing}"
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "library_name: s2s" in card and "BLEU" in card and "chrF" in card
