import gzip

import pytest

from s2s import data
from s2s.data import DataError


def write(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_tsv_csv_and_two_files_are_read(tmp_path):
    pairs, report = data.read_user_pairs(write(tmp_path / "a.tsv", "Hello.\tHallo.\nA dog.\tEin Hund.\n"))
    assert pairs == [("Hello.", "Hallo."), ("A dog.", "Ein Hund.")] and report.kept == 2
    pairs, _ = data.read_user_pairs(write(tmp_path / "a.csv", 'source,target\n"Hi, you.","Hallo, du."\n'))
    assert pairs == [("Hi, you.", "Hallo, du.")]
    pairs, _ = data.read_user_pairs(write(tmp_path / "s.txt", "One.\nTwo.\n"), write(tmp_path / "t.txt", "Eins.\nZwei.\n"))
    assert pairs == [("One.", "Eins."), ("Two.", "Zwei.")]


@pytest.mark.parametrize("name, content, message", [
    ("bad.tsv", "Hello.\tHallo.\tExtra\n", "line 1: expected 2 tab-separated columns"),
    ("bad.csv", "a,b,c\n", "row 1: expected 2 comma-separated columns"),
    ("latin1.tsv", "caf\xe9\tcaf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("blob.tsv", b"\x00\x01\x02binary", "binary file"),
    ("empty.tsv", "", "holds no sentence pairs"),
])
def test_bad_files_are_rejected_with_clear_messages(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        data.read_user_pairs(write(tmp_path / name, content))


def test_mismatched_line_counts_are_rejected(tmp_path):
    with pytest.raises(DataError, match="has 2 lines but t.txt has 1"):
        data.read_user_pairs(write(tmp_path / "s.txt", "a\nb\n"), write(tmp_path / "t.txt", "x\n"))


def test_dropped_pairs_are_reported_with_reasons():
    pairs = [("ok", "gut"), ("", "leer"), ("word " * 200, "lang"), ("cafe\u0301", "Cafe\u0301")]
    kept, report = data.clean_pairs(pairs, max_words=100)
    assert kept == [("ok", "gut"), ("café", "Café")]  # NFC-normalised
    assert report.dropped == {"empty side": 1, "longer than 100 words": 1}
    assert "first at line 2" in report.summary()


def test_split_is_deterministic_and_disjoint_by_source_sentence():
    pairs = [(f"sentence {i % 300}", f"phrase {i}") for i in range(1000)]  # ~3 translations per source
    a = data.split_by_source(pairs, n_val=30, n_test=60, seed=5)
    b = data.split_by_source(list(reversed(pairs)), n_val=30, n_test=60, seed=5)
    sources = {name: {s for s, _ in split} for name, split in a.items()}
    assert sources == {name: {s for s, _ in split} for name, split in b.items()}
    assert len(sources["test"]) == 60 and len(sources["val"]) == 30
    assert not sources["test"] & sources["train"] and not sources["val"] & sources["train"]
    assert not sources["test"] & sources["val"]
    assert sum(len(v) for v in a.values()) == 1000


def test_joined_pairs_are_2_or_3_pairs_joined_on_both_sides_in_a_seeded_order():
    pairs = [(f"Source {i}.", f"Ziel {i}.") for i in range(50)]
    joined = data.join_pairs(pairs, 200, seed=3)
    assert joined == data.join_pairs(pairs, 200, seed=3) != data.join_pairs(pairs, 200, seed=4)
    assert len(joined) == 200 and data.join_pairs(pairs[:1], 5, seed=3) == []
    for src, tgt in joined:
        numbers = src.replace("Source ", "").rstrip(".").split(". ")
        assert 2 <= len(numbers) <= 3 and len(set(numbers)) == len(numbers)
        assert tgt == " ".join(f"Ziel {n}." for n in numbers)  # the same pairs, in the same order


def test_mixed_corpus_joins_training_pairs_with_training_pairs_only(tmp_path):
    lines = [f"English line {i}.\tDeutsche Zeile {i}." for i in range(400)]
    with gzip.open(tmp_path / "tatoeba.tsv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    for split in ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco"):
        for lang, word in (("en", "caption"), ("de", "Bild")):
            with gzip.open(tmp_path / f"{split}.{lang}.gz", "wt") as f:
                f.write("".join(f"{split} {word} {i}\n" for i in range(10)))
    plain = data.mixed_corpus(tmp_path / "tatoeba.tsv.gz", tmp_path, "en", "de", n_val=40, n_test=60)
    mixed = data.mixed_corpus(tmp_path / "tatoeba.tsv.gz", tmp_path, "en", "de", n_val=40, n_test=60,
                              joined_fraction=0.5)
    assert len(mixed["train"]) == len(plain["train"]) + 150 and len(mixed["val"]) == len(plain["val"]) + 20
    assert mixed["test"] == plain["test"]
    held_out = {s for s, _ in plain["val"] + plain["test"]}
    for src, _ in mixed["train"][len(plain["train"]):]:
        parts = [p if p.endswith(".") else p + "." for p in src.split(". ")]
        assert not held_out & set(parts) and all(p.startswith("English line") for p in parts)
    with pytest.raises(ValueError, match="joined_fraction must be between 0 and 4"):
        data.mixed_corpus(tmp_path / "tatoeba.tsv.gz", tmp_path, "en", "de", joined_fraction=-1)


def test_multi30k_reader_checks_alignment(tmp_path):
    with gzip.open(tmp_path / "val.en.gz", "wt") as f:
        f.write("a\nb\n")
    with gzip.open(tmp_path / "val.de.gz", "wt") as f:
        f.write("x\n")
    with pytest.raises(DataError, match="has 2 lines but val.de.gz has 1"):
        data.read_multi30k(tmp_path, "val")
    with pytest.raises(DataError, match="not found"):
        data.read_multi30k(tmp_path, "test_2016_flickr")


def test_token_batches_cover_every_example_once_within_budget():
    examples = [([5] * (i % 7 + 1) + [3], [6] * (i % 5 + 1)) for i in range(100)]
    batches = list(data.token_batches(examples, max_tokens=40, seed=1))
    assert sum(b.src.size(0) for b in batches) == 100
    assert all(b.tgt_out.numel() <= 40 or b.src.size(0) == 1 for b in batches)
    assert [b.src.tolist() for b in batches] == [b.src.tolist() for b in data.token_batches(examples, 40, seed=1)]
