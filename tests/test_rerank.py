"""Reranking the beam by the model that translates back (s2s.rerank), with tiny en→de and de→en models."""
import json
import shutil

import numpy as np
import pytest
import torch

from s2s import rerank
from s2s.api import DecodeOptions, Translator
from s2s.checkpoint import save_checkpoint
from s2s.config import Config, ConfigError
from s2s.model import Seq2Seq
from s2s.search import Decoded
from s2s.train import encode_pairs

from tiny import overfit, tiny_config, tiny_tokenizers, toy_pairs

SENTENCES = ["A man rides a bike.", "Two dogs play in the snow.", "A woman is singing on a stage."]
BEAM = DecodeOptions(method="beam", beam_size=4, nbest=4)


@pytest.fixture(scope="module")
def pair_folder(tiny_checkpoint, tmp_path_factory):
    """checkpoints/ with tiny-en-de (reranked by its sibling, λ = 1) and tiny-de-en, trained on the same pairs."""
    root = tmp_path_factory.mktemp("pair")
    forward = shutil.copytree(tiny_checkpoint, root / "tiny-en-de")
    config = json.loads((forward / "config.json").read_text())
    (forward / "config.json").write_text(json.dumps({**config, "reverse_model": "tiny-de-en", "reverse_weight": 1.0}))
    torch.manual_seed(1)
    pairs = [(t, s) for s, t in toy_pairs()]
    source, target = tiny_tokenizers(pairs)
    model = Seq2Seq(tiny_config(source, target, src_lang="de", tgt_lang="en"))
    overfit(model, encode_pairs(pairs[:20], source, target, model.config.max_src_tokens), steps=120)
    save_checkpoint(root / "tiny-de-en", model, source, target, training={"recipe": {"name": "tiny"}, "state": {}})
    return root


@pytest.fixture(scope="module")
def reranked(pair_folder) -> Translator:
    return Translator.load(pair_folder / "tiny-en-de", device="cpu")


def test_the_sibling_reverse_model_is_loaded(reranked):
    assert reranked.reverse is not None and reranked.reverse.name == "tiny-de-en"
    assert (reranked.reverse.config.src_lang, reranked.reverse.config.tgt_lang) == ("de", "en")
    assert reranked.reverse.reverse is None  # one level only: the reverse model never loads its own


def test_back_logprob_is_the_step_by_step_teacher_forced_log_probability(reranked):
    """The fused teacher-forced pass equals feeding the source's pieces through `step` one by one."""
    reverse, source, translation = reranked.reverse, SENTENCES[0], "Ein Mann fährt Fahrrad."
    got = rerank.back_logprobs(reverse, [source, SENTENCES[1]], [translation, "Zwei Hunde."])[0]
    src = torch.tensor([reverse.encode_source(translation)[0]])
    gold = reverse.target_tokenizer.encode(source) + [reverse.config.eos_id]
    with torch.inference_mode():
        memory, state = reverse.model.encode(src, torch.tensor([src.size(1)]))
        y, total = torch.tensor([reverse.config.bos_id]), 0.0
        for piece in gold:
            log_probs, state, _ = reverse.model.step(y, state, memory)
            total += float(log_probs[0, piece])
            y = torch.tensor([piece])
    assert got == pytest.approx(total / len(gold), abs=1e-4)
    assert got < 0


def test_reranking_reorders_the_same_hypotheses_by_score_plus_weighted_back_logprob(reranked):
    for sentence in SENTENCES:
        plain = reranked.translate(sentence, DecodeOptions(method="beam", beam_size=4, nbest=4, reverse_weight=0))
        weighted = reranked.translate(sentence, DecodeOptions(method="beam", beam_size=4, nbest=4, reverse_weight=2))
        assert all(h.back_logprob is None for h in plain.nbest)
        beam_score = {h.text: h.score for h in plain.nbest}
        assert {h.text for h in weighted.nbest} == set(beam_score)
        for h in weighted.nbest:
            assert h.score == pytest.approx(beam_score[h.text] + 2 * h.back_logprob, abs=1e-5)
        assert [h.score for h in weighted.nbest] == sorted((h.score for h in weighted.nbest), reverse=True)
        best = weighted.nbest[0]  # the views (attention, pieces) are those of the hypothesis ranked first
        assert weighted.translation == best.text and weighted.target_pieces == best.pieces
        assert len(weighted.attention) == len(weighted.target_pieces)


def test_the_models_own_weight_is_the_default_and_nbest_is_cut_after_reranking(reranked):
    own = reranked.translate(SENTENCES[1], DecodeOptions(method="beam", beam_size=4, nbest=2))
    assert len(own.nbest) == 2 and all(h.back_logprob is not None for h in own.nbest)
    everything = reranked.translate(SENTENCES[1], DecodeOptions(method="beam", beam_size=4, nbest=4, reverse_weight=1))
    assert [h.text for h in own.nbest] == [h.text for h in everything.nbest[:2]]


def test_greedy_and_sampling_are_never_reranked(reranked):
    assert reranked.translate(SENTENCES[0]).nbest[0].back_logprob is None
    sampled = reranked.translate(SENTENCES[0], DecodeOptions(method="sample", seed=3))
    assert sampled.nbest[0].back_logprob is None and not sampled.notice


def test_batched_reranking_equals_one_sentence_at_a_time(reranked):
    options = DecodeOptions(method="beam", beam_size=4)
    assert reranked.translate_batch(SENTENCES, options, batch_size=2) == [
        reranked.translate(s, options).translation for s in SENTENCES]


def test_without_the_reverse_model_the_beam_is_not_reranked_and_says_so(pair_folder, tmp_path):
    alone = shutil.copytree(pair_folder / "tiny-en-de", tmp_path / "tiny-en-de")
    translator = Translator.load(alone, device="cpu")
    assert translator.reverse is None
    trace = translator.translate(SENTENCES[0], BEAM)
    assert "Not reranked" in trace.notice and "tiny-de-en" in trace.notice
    assert all(h.back_logprob is None for h in trace.nbest)
    assert not translator.translate(SENTENCES[0], DecodeOptions(method="beam", reverse_weight=0)).notice


def test_a_reverse_model_of_other_languages_is_not_used(pair_folder, tmp_path):
    shutil.copytree(pair_folder / "tiny-en-de", tmp_path / "tiny-en-de")
    shutil.copytree(pair_folder / "tiny-en-de", tmp_path / "tiny-de-en")  # en→de again, not de→en
    assert Translator.load(tmp_path / "tiny-en-de", device="cpu").reverse is None


@pytest.mark.parametrize("name", ["../de-en", "a/b", ".hidden", "x\\y", "x" * 101])
def test_reverse_model_must_be_a_plain_sibling_folder_name(name):
    with pytest.raises(ConfigError, match="reverse_model"):
        Config(reverse_model=name)


@pytest.mark.parametrize("weight", [-0.1, 5.5])
def test_reverse_weight_out_of_range_is_refused(weight):
    with pytest.raises(ConfigError, match="reverse_weight"):
        Config(reverse_weight=weight)
    with pytest.raises(ValueError, match="back-translation weight"):
        DecodeOptions(method="beam", reverse_weight=weight).validate()


def test_rerank_sorts_by_score_plus_weight_times_back():
    def hyp(score):
        return Decoded(ids=[3], alpha=np.zeros((1, 1)), step_logprobs=[score], top_ids=np.zeros((1, 0), int),
                       top_probs=np.zeros((1, 0)), score=score)
    ranked = rerank.rerank([hyp(-1.0), hyp(-1.5), hyp(-2.0)], [-3.0, -1.0, -2.0], 0.5)
    assert [h.score for h in ranked] == [-2.0, -2.5, -3.0]
    assert [h.back_logprob for h in ranked] == [-1.0, -3.0, -2.0]
