"""The streaming reader (s2s.stream): bounded windows, every pair once an epoch, seeded, resumable from a
position; and a `corpus = "stream"` recipe that trains and resumes like an in-memory one."""
import gzip
import json

import pytest
import torch
from safetensors.torch import load_file

from s2s import stream
from s2s.data import DataError
from s2s.recipe import Recipe
from s2s.train import train_from_recipe
from tiny import toy_pairs

N_PAIRS = 503


def fake_encode(pairs):
    """'s17 w w w' -> source [27, 5, 5, 5, 3]: the first id names the line (17 + 10)."""
    return [([int(s.split()[0][1:]) + 10] + [5] * (len(s.split()) - 1) + [3], [6] * len(t.split())) for s, t in pairs]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    """N_PAIRS numbered pairs of 1-12 words, plus two lines that are not pairs (dropped)."""
    path = tmp_path_factory.mktemp("stream") / "corpus.tsv"
    lines = [f"s{i} " + "w " * (i * 7 % 12) + f"\tt{i} " + "v " * (i * 5 % 11) for i in range(N_PAIRS)]
    lines[100:100] = ["only one column", "\tempty source"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_source(path, seed=1, buffer_pairs=64, batch_tokens=60):
    return stream.StreamingBatches(stream.PairFile.open(path), fake_encode, batch_tokens, seed, buffer_pairs)


def ids(batch):
    return [src[0] - 10 for src, _ in batch]


def test_every_pair_once_per_epoch_from_windows_of_bounded_size(corpus_file, monkeypatch):
    source = make_source(corpus_file)
    reads = []
    read = stream.PairFile.read
    monkeypatch.setattr(stream.PairFile, "read", lambda self, files, n, offsets: reads.append(n) or
                        read(self, files, n, offsets))
    batches = [batch for batch, _ in source.batches(0)]
    assert sorted(i for b in batches for i in ids(b)) == list(range(N_PAIRS))
    assert set(reads) == {64}  # never more than the buffer at a time
    assert source.report.dropped["empty side"] == 2 and source.report.kept == N_PAIRS
    for batch in batches:  # token-bucketed: padded size within the budget (a lone long pair may exceed it)
        longest = max(max(len(s), len(t) + 1) for s, t in batch)
        assert longest * len(batch) <= 60 or len(batch) == 1
    positions = [pos for _, pos in source.batches(0)]
    windows = [pos["window"] - (pos["batch"] == 0) for pos in positions]
    assert windows == sorted(windows)  # windows are read in turn, each one shuffled inside
    first = [i for b, w in zip(batches, windows) if w == 0 for i in ids(b)]
    assert sorted(first) == list(range(64)) and first != sorted(first)  # window 0: its 64 lines, shuffled


def test_the_order_depends_on_the_seed_and_the_epoch_only(corpus_file):
    first = [ids(b) for b, _ in make_source(corpus_file).batches(0)]
    assert first == [ids(b) for b, _ in make_source(corpus_file).batches(0)]
    assert first != [ids(b) for b, _ in make_source(corpus_file).batches(1)]
    assert first != [ids(b) for b, _ in make_source(corpus_file, seed=2).batches(0)]


def test_resuming_from_a_saved_position_seeks_and_continues_exactly(corpus_file, monkeypatch):
    full = list(make_source(corpus_file).batches(3))
    window_end = next(k for k, (_, pos) in enumerate(full) if pos["batch"] == 0) + 1
    for done in (1, 5, window_end, len(full) - 1):
        saved = json.loads(json.dumps(full[done - 1][1]))  # as it goes through training.json
        opened = []
        handles = stream.PairFile.handles
        monkeypatch.setattr(stream.PairFile, "handles", lambda self, offsets: opened.append(list(offsets)) or
                            handles(self, offsets))
        resumed = list(make_source(corpus_file).batches(3, done, saved))
        monkeypatch.undo()
        assert [ids(b) for b, _ in resumed] == [ids(b) for b, _ in full[done:]]
        assert opened == [saved["offsets"]]
        if done >= window_end:
            assert saved["offsets"][0] > 0  # the windows already done are not read again
    # without a position (an old resume state) the batches done are counted off from the start
    assert [ids(b) for b, _ in make_source(corpus_file).batches(3, 7, {})] == [ids(b) for b, _ in full[7:]]


def test_two_line_aligned_files_gzipped_or_not_read_like_a_tsv(tmp_path):
    pairs = toy_pairs()[:30]
    (tmp_path / "c.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    (tmp_path / "c.en.gz").write_bytes(gzip.compress("".join(s + "\n" for s, _ in pairs).encode()))
    (tmp_path / "c.de").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    tsv, two = stream.PairFile.open(tmp_path / "c.tsv"), stream.PairFile.open(tmp_path / "c", "en", "de")
    assert two.pairs() == tsv.pairs() == pairs
    (tmp_path / "c.de").write_text("".join(t + "\n" for _, t in pairs[:-1]), encoding="utf-8")
    with pytest.raises(DataError, match="same number of lines"):
        two.pairs()
    with pytest.raises(DataError, match="neither a TSV file nor the prefix"):
        stream.PairFile.open(tmp_path / "missing", "en", "de")


def test_the_tokenizer_sample_is_uniform_over_the_whole_file_and_seeded(corpus_file):
    corpus = stream.PairFile.open(corpus_file)
    sample = stream.sample_pairs(corpus, 50, seed=4, max_words=100)
    assert sample == stream.sample_pairs(corpus, 50, seed=4, max_words=100)
    numbers = [int(s.split()[0][1:]) for s, _ in sample]
    assert len(set(numbers)) == len(numbers) >= 48 and max(numbers) > 400 and min(numbers) < 100


STREAM_MODEL = dict(emb_size=32, encoder_hidden_size=32, hidden_size=32, attentional_size=32, dropout=0.0)


def stream_recipe(path, **kw) -> Recipe:
    fields = dict(name="tiny-stream", corpus="stream", data_path=str(path), n_val=8, buffer_pairs=40,
                  tokenizer_sample=500, src_vocab_size=400, tgt_vocab_size=400, model=STREAM_MODEL,
                  batch_tokens=200, lr=5e-3, max_steps=10, eval_every=5, patience=0, threads=1, half=False, seed=3)
    fields.update(kw)
    return Recipe(**fields)


def test_a_stream_recipe_trains_and_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    path = tmp_path / "big.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in toy_pairs() * 3), encoding="utf-8")
    events = []
    train_from_recipe(stream_recipe(path), events.append, output=tmp_path / "whole", device="cpu")
    evals = [e for e in events if e.kind == "eval"]
    assert [e.step for e in evals] == [5, 10] and evals[-1].val_loss < evals[0].val_loss
    train_from_recipe(stream_recipe(path, max_steps=7), output=tmp_path / "split", device="cpu")
    state = json.loads((tmp_path / "split.resume" / "training.json").read_text())
    assert state["step"] == 7 and state["data_position"]["offsets"][0] > 0
    train_from_recipe(stream_recipe(path), resume=True, output=tmp_path / "split", device="cpu")
    whole, split = (load_file(str(tmp_path / f"{name}.resume" / "model.safetensors")) for name in ("whole", "split"))
    assert all(torch.allclose(whole[k], split[k], atol=1e-6) for k in whole)
    training = json.loads((tmp_path / "whole" / "training.json").read_text())
    assert training["train_pairs"] is None and "streamed from" in training["data_report"]["train"]
