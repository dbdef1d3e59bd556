import pytest

from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, clean_text


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tiny import toy_pairs
    return Tokenizer.train([s for s, _ in toy_pairs()], 300)


def test_special_ids_are_fixed(tokenizer):
    assert [tokenizer.sp.id_to_piece(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)] == ["<pad>", "<unk>", "<s>", "</s>"]


@pytest.mark.parametrize("text", ["A man rides a bike.", "Émilie café naïve", "🚲 emoji ✨", "שלום", "日本語のテキスト",
                                  "<b>x</b> </s>"])
def test_byte_fallback_round_trips_any_character(tokenizer, text):
    ids = tokenizer.encode(text)
    assert UNK_ID not in ids
    assert tokenizer.decode(ids) == text


def test_control_characters_and_nul_are_cleaned(tokenizer):
    assert clean_text("a\x00b\x07c\u0301") == "a b ć"
    assert tokenizer.decode(tokenizer.encode("null\x00byte")) == "null byte"
    assert tokenizer.encode("") == [] and tokenizer.encode(" \t\n") == []


def test_save_and_load_give_the_same_model(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "t.model")
    again = Tokenizer.load(tmp_path / "t.model")
    text = "A dog runs through the grass."
    assert again.encode(text) == tokenizer.encode(text)
    assert again.pieces(again.encode(text)) == tokenizer.pieces(tokenizer.encode(text))


def test_readable_text_shows_broken_bytes_and_control_characters_as_codes():
    """Issue 10, item 9: sampling can draw byte pieces that make no printable character."""
    from s2s.tokenizer import readable_text
    assert readable_text(["▁Ein", "▁caf", "<0xC3>", "<0xA9>", "</s>"]) == "Ein café"
    assert readable_text(["▁Ein", "<0x07>", "<0xE2>", "▁Hund"]) == "Ein⟨0x07⟩⟨0xE2⟩ Hund"
