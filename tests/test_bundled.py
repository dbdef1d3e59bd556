"""Smoke test of the committed checkpoints: they load strictly and really translate."""
from pathlib import Path

import pytest

from s2s.api import DecodeOptions, Translator

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = {"en-de-multi30k": "A man is riding a bicycle.", "en-fr-tatoeba": "I am hungry."}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_checkpoint_translates(name):
    folder = ROOT / "checkpoints" / name
    assert folder.is_dir(), f"bundled checkpoint {folder} is missing"
    translator = Translator.load(folder, device="cpu")
    for options in (DecodeOptions(), DecodeOptions(method="beam", beam_size=5)):
        trace = translator.translate(BUNDLED[name], options)
        assert trace.translation.strip() and trace.target_pieces[-1] == "</s>"
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "library_name: s2s" in card and "BLEU" in card
