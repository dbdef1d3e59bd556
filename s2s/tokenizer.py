"""SentencePiece subwords: train, encode to ids and pieces, decode.

Byte fallback is always on, so no character a person types (emoji, accents,
scripts the model never saw) becomes <unk>: unseen characters fall back to
their UTF-8 bytes and round-trip.
"""
from __future__ import annotations

import io
import unicodedata
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

# The special ids every s2s tokenizer (and so every Config and batch) uses; the constructor checks them.
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_PIECES = {PAD_ID: "<pad>", UNK_ID: "<unk>", BOS_ID: "<s>", EOS_ID: "</s>"}  # id -> piece
WORD_START = "▁"  # SentencePiece marks the first piece of each word with U+2581


def clean_text(text: str) -> str:
    """NFC-normalise, replace control characters (NUL, bidi marks stay) by spaces and lone surrogates
    (a str can hold them, UTF-8 cannot: SentencePiece would raise) by U+FFFD."""
    text = unicodedata.normalize("NFC", text)
    return "".join(_CLEAN.get(unicodedata.category(ch), ch) for ch in text).strip()


_CLEAN = {"Cc": " ", "Cs": "\ufffd"}  # Unicode category -> replacement


class Tokenizer:
    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ValueError("tokenizer special ids must be pad=0 unk=1 bos=2 eos=3")

    @classmethod
    def train(cls, lines: Iterable[str], vocab_size: int, model_type: str = "bpe") -> "Tokenizer":
        cleaned = [clean_text(line) for line in lines if line.strip()]
        if not cleaned:
            raise ValueError("cannot train a tokenizer on no text")
        # every character seen plus the 256 byte pieces and 4 specials must fit in the vocabulary
        minimum = len(set("".join(cleaned)) - {" "}) + 256 + 4 + 1
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(cleaned),
            model_writer=model, vocab_size=max(vocab_size, minimum), model_type=model_type,
            character_coverage=1.0, byte_fallback=True, hard_vocab_limit=False,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            num_threads=2, minloglevel=2, input_sentence_size=2_000_000, shuffle_input_sentence=True)
        return cls(model.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        return cls(Path(path).read_bytes())

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model_proto)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(clean_text(text))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) not in SPECIAL_PIECES])


def readable_text(pieces: Iterable[str]) -> str:
    """Pieces as text a person can read: like `Tokenizer.decode`, but byte-fallback pieces that do not make a
    printable character (a broken UTF-8 sequence, a control character: sampling can draw them) are shown
    as ⟨0xNN⟩ instead of � or an invisible character."""
    out: list[str] = []
    pending = bytearray()
    for piece in list(pieces) + [""]:  # "" flushes the last bytes
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            pending.append(int(piece[3:5], 16))
            continue
        out.append(_readable_bytes(bytes(pending)))
        pending.clear()
        if piece not in SPECIAL_PIECES.values():
            out.append(piece)
    return "".join(out).replace(WORD_START, " ").strip()


def _readable_bytes(data: bytes) -> str:
    """UTF-8 bytes as text, each byte that does not start a printable character shown as ⟨0xNN⟩."""
    out, i = [], 0
    while i < len(data):
        for size in (1, 2, 3, 4):
            try:
                char = data[i:i + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if char.isprintable() or char in " \u00a0":
                out.append(char)
                i += size
                break
        else:
            out.append(f"⟨0x{data[i]:02X}⟩")
            i += 1
    return "".join(out)
