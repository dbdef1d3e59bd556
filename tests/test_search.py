import json

import numpy as np

import pytest
import torch

from s2s import search
from s2s.api import DecodeOptions, Translator

SENTENCES = ["A man rides a bike.", "Two dogs play in the snow.", "A woman is singing on a stage.",
             "A little girl climbing into a wooden playhouse."]


@pytest.fixture(scope="module")
def translator(tiny_checkpoint) -> Translator:
    return Translator.load(tiny_checkpoint, device="cpu")


def test_step_by_step_equals_greedy(translator):
    for text in SENTENCES:
        greedy = translator.translate(text)
        state = translator.stepper_start(text)
        while not state.done:
            state = translator.stepper_advance(state)
        stepped = translator.stepper_trace(state)
        assert stepped.target_pieces == greedy.target_pieces
        np.testing.assert_allclose(stepped.attention, greedy.attention, atol=1e-6)


def test_beam_width_one_equals_greedy(translator):
    for text in SENTENCES:
        greedy = translator.translate(text)
        beam = translator.translate(text, DecodeOptions(method="beam", beam_size=1, length_penalty=0.0))
        assert beam.target_pieces == greedy.target_pieces
        assert beam.logprob == pytest.approx(greedy.logprob, abs=1e-4)


@pytest.mark.parametrize("options", [DecodeOptions(), DecodeOptions(method="beam", beam_size=4)],
                         ids=["greedy", "beam4"])
def test_batched_translation_equals_one_at_a_time(translator, options):
    texts = SENTENCES + ["", "A dog.", SENTENCES[0]]
    batched = translator.translate_batch(texts, options, batch_size=3)
    single = [translator.translate(t, options, record_tree=False).translation for t in texts]
    assert batched == single
    assert batched[4] == ""


def test_beam_nbest_is_sorted_and_finds_at_least_greedy_score(translator):
    for text in SENTENCES:
        greedy = translator.translate(text)
        beam = translator.translate(text, DecodeOptions(method="beam", beam_size=5, nbest=3, length_penalty=0.0))
        scores = [h.score for h in beam.nbest]
        assert scores == sorted(scores, reverse=True) and len(scores) == 3
        assert beam.logprob >= greedy.logprob - 1e-4


def test_beam_tree_is_consistent(translator):
    trace = translator.translate(SENTENCES[1], DecodeOptions(method="beam", beam_size=3))
    tree = trace.beam_tree
    assert tree[0].parent == -1
    assert {n.status for n in tree} <= {"kept", "pruned", "finished"}
    for node in tree[1:]:
        parent = tree[node.parent]
        assert parent.step == node.step - 1 and parent.status == "kept"
    assert any(n.status == "finished" for n in tree)
    assert sum(n.status == "kept" for n in tree if n.step == 1) <= 3


def test_forced_prefix_keeps_the_prefix(translator):
    prefix_pieces = translator.translate(SENTENCES[2]).target_pieces[:2]
    prefix = [translator.piece_ids(p, exact=True)[0] for p in prefix_pieces]
    trace = translator.translate(SENTENCES[0], prefix=prefix)
    assert trace.target_pieces[:2] == prefix_pieces
    assert trace.target_pieces[-1] == "</s>"


def test_forcing_a_candidate_changes_the_continuation(translator):
    state = translator.stepper_start(SENTENCES[0])
    state = translator.stepper_advance(state)
    trace = translator.stepper_trace(state, extra_step=True)
    second_choice = trace.top_k[-1][1]
    forced = translator.stepper_run(translator.stepper_advance(state, translator.piece_ids(second_choice.piece,
                                                                                           exact=True)))
    free = translator.stepper_run(state)
    assert forced.target_ids[1] == second_choice.id
    assert forced.forced[:2] == [False, True]
    assert forced.target_ids != free.target_ids
    back = translator.stepper_back(translator.stepper_back(forced))
    assert back.target_ids == forced.target_ids[:-2] and not back.done


def test_forcing_a_word_outside_the_vocabulary_forces_its_pieces(translator):
    start = translator.stepper_start(SENTENCES[0])
    state = translator.stepper_advance(start, translator.piece_ids("Zyzzyvaxx"))
    assert translator.target_tokenizer.decode(state.target_ids) == "Zyzzyvaxx"
    assert all(state.forced) and len(state.target_ids) > 1
    with pytest.raises(ValueError, match="not a piece of this model's target vocabulary"):
        translator.piece_ids("Zyzzyvaxx", exact=True)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        translator.piece_ids(10**6)
    with pytest.raises(ValueError, match="Type a piece or a word"):
        translator.piece_ids("  ")


def test_a_typed_word_prefers_the_word_initial_piece(translator):
    word_start = next(p for p in translator.translate(SENTENCES[0]).target_pieces if p.startswith("▁") and len(p) > 2)
    word = word_start[1:]
    assert translator.piece_ids(word) == translator.piece_ids(word_start, exact=True)  # "Mann" forces "▁Mann"
    assert translator.piece_ids("</s>") == [translator.config.eos_id]


def test_each_step_click_is_one_greedy_decode(translator, monkeypatch):
    calls = []
    decode = search.decode
    monkeypatch.setattr(search, "decode", lambda *a, **k: calls.append(1) or decode(*a, **k))
    state = translator.stepper_advance(translator.stepper_start(SENTENCES[0]))
    continuation = translator.stepper_decode(state)
    nxt = translator.stepper_advance(state, continuation=continuation)
    assert translator.stepper_decode(nxt).trace.target_pieces == continuation.trace.target_pieces  # greedy: the same
    assert len(calls) == 3


def test_a_kept_continuation_resumes_exactly_where_a_fresh_decode_would_go(translator):
    """Next, Force, Back, Run and Reset from the kept decoder states give what decoding from <s> gives."""
    kept = translator.stepper_decode(translator.stepper_start(SENTENCES[3]))
    second = kept.trace.top_k[1][1].id
    stepper = translator.stepper_start(SENTENCES[3])
    actions = [lambda s: translator.stepper_advance(s, continuation=kept),
               lambda s: translator.stepper_advance(s, continuation=kept),
               lambda s: translator.stepper_advance(s, forced=[second]),
               lambda s: translator.stepper_advance(s, forced=translator.piece_ids("Zyzzyvaxx")),
               translator.stepper_back, translator.stepper_back, translator.stepper_back, translator.stepper_back,
               lambda s: translator.stepper_run(s, kept), translator.stepper_back,
               lambda s: translator.stepper_start(s.source)]
    for act in actions:
        stepper = act(stepper)
        kept, fresh = translator.stepper_decode(stepper, kept=kept), translator.stepper_decode(stepper)
        assert kept.ids == fresh.ids and kept.ids[:len(stepper.target_ids)] == stepper.target_ids
        assert kept.trace.top_k == fresh.trace.top_k
        np.testing.assert_allclose(kept.trace.attention, fresh.trace.attention, atol=1e-6)
        np.testing.assert_allclose(kept.trace.step_logprobs, fresh.trace.step_logprobs, atol=1e-5)


def test_a_kept_continuation_decodes_only_what_changed(translator, monkeypatch):
    """Next decodes nothing; forcing piece n+1 decodes from step n on; the encoder runs once per sentence."""
    steps, encodes = [], []
    step, encode = translator.model.step, translator.model.encode
    monkeypatch.setattr(translator.model, "step", lambda *a: steps.append(1) or step(*a))
    monkeypatch.setattr(translator.model, "encode", lambda *a: encodes.append(1) or encode(*a))
    stepper = translator.stepper_start(SENTENCES[3])
    kept = translator.stepper_decode(stepper)
    assert len(encodes) == 1 and len(steps) == len(kept.ids)
    for _ in range(3):
        steps.clear()
        stepper = translator.stepper_advance(stepper, continuation=kept)
        kept = translator.stepper_decode(stepper, kept=kept)
        assert steps == []  # the greedy continuation already holds the next piece
    steps.clear()
    stepper = translator.stepper_advance(stepper, forced=[kept.trace.top_k[3][1].id])
    kept = translator.stepper_decode(stepper, kept=kept)
    assert len(steps) == len(kept.ids) - 3 and len(encodes) == 1  # steps 4.. again, nothing before
    steps.clear()
    back = translator.stepper_decode(translator.stepper_back(stepper), kept=kept)  # over the forced piece
    assert back.ids[3] != kept.ids[3] and len(steps) == len(back.ids) - 3 and len(encodes) == 1  # greedy from step 4
    other = translator.stepper_decode(translator.stepper_start(SENTENCES[0]), kept=kept)  # another sentence
    assert len(encodes) == 2 and other.ids == translator.stepper_decode(translator.stepper_start(SENTENCES[0])).ids


def test_sampling_is_reproducible_with_a_seed_and_respects_top_k(translator):
    opts = DecodeOptions(method="sample", temperature=1.5, seed=7)
    a = translator.translate(SENTENCES[0], opts)
    b = translator.translate(SENTENCES[0], DecodeOptions(method="sample", temperature=1.5, seed=7))
    assert a.target_pieces == b.target_pieces
    top1 = translator.translate(SENTENCES[0], DecodeOptions(method="sample", top_k=1, seed=3))
    assert top1.target_pieces == translator.translate(SENTENCES[0]).target_pieces  # top-1 sampling is greedy


def test_top_p_keeps_the_nucleus():
    choose = search.sampling_chooser(top_p=0.5, seed=0)
    log_probs = torch.log(torch.tensor([[0.6, 0.3, 0.1]]))
    assert {int(choose(log_probs)) for _ in range(50)} == {0}


def test_trace_is_json_serialisable_and_complete(translator):
    trace = translator.translate(SENTENCES[2], DecodeOptions(method="beam", beam_size=3, nbest=2))
    data = json.loads(trace.to_json())
    assert len(data["attention"]) == len(trace.target_pieces)
    assert all(len(row) == len(trace.source_pieces) for row in data["attention"])
    assert all(abs(sum(row) - 1) < 1e-5 for row in data["attention"])
    assert len(data["top_k"]) == len(trace.target_pieces) and len(data["top_k"][0]) == 5
    assert trace.source_pieces[-1] == "</s>"
    assert len(data["nbest"]) == 2


@pytest.mark.parametrize("text", ["", "   \n\t ", "🚲🚲 ✨", "שלום עולם", "null\x00byte \x07bell", "\u202eRTL override",
                                  "x" * 5000])
def test_any_unicode_input_translates_without_error(translator, text):
    trace = translator.translate(text)
    assert isinstance(trace.translation, str)
    if not text.strip():
        assert trace.translation == "" and trace.target_pieces == []


def test_very_long_input_is_truncated_with_a_notice(translator):
    trace = translator.translate(" ".join(["A man rides a bike."] * 200))
    assert "truncated" in trace.notice
    assert len(trace.source_pieces) == translator.config.max_src_tokens


def test_invalid_options_are_clear_errors(translator):
    with pytest.raises(ValueError, match="beam width"):
        translator.translate("A dog.", DecodeOptions(method="beam", beam_size=0))
    with pytest.raises(ValueError, match="temperature"):
        translator.translate("A dog.", DecodeOptions(method="sample", temperature=0))
    with pytest.raises(ValueError, match="greedy, beam or sample"):
        translator.translate("A dog.", DecodeOptions(method="viterbi"))


def test_default_length_penalty_is_the_models_own(translator, monkeypatch):
    text = SENTENCES[3]
    for penalty in (0.0, 3.0):
        monkeypatch.setattr(translator.config, "length_penalty", penalty)
        default = translator.translate(text, DecodeOptions(method="beam", beam_size=4, nbest=3))
        explicit = translator.translate(text, DecodeOptions(method="beam", beam_size=4, nbest=3,
                                                            length_penalty=penalty))
        assert [h.score for h in default.nbest] == [h.score for h in explicit.nbest]


def test_coverage_score_is_gnmt_and_ignores_padding():
    coverage = torch.tensor([[1.5, 0.5, 0.0], [1.0, 1.0, 1.0]])  # (N, S)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    score = search.coverage_score(coverage, mask, beta=0.2)
    assert score[0].item() == pytest.approx(0.2 * np.log(0.5))  # min(1.5, 1) adds log 1 = 0; padding ignored
    assert score[1].item() == pytest.approx(0.0)  # every piece fully covered: no penalty
    assert search.coverage_score(coverage, mask, beta=0.0).abs().sum().item() == 0.0


def test_coverage_penalty_reranks_finished_hypotheses_only_when_set(translator):
    plain = DecodeOptions(method="beam", beam_size=4, nbest=4, length_penalty=1.0)
    covered = DecodeOptions(method="beam", beam_size=4, nbest=4, length_penalty=1.0, coverage_penalty=1.0)
    for text in SENTENCES:
        zero = translator.translate(text, DecodeOptions(method="beam", beam_size=4, nbest=4, length_penalty=1.0,
                                                         coverage_penalty=0.0))
        assert [h.text for h in zero.nbest] == [h.text for h in translator.translate(text, plain).nbest]
        with_cov = translator.translate(text, covered)
        scores = [h.score for h in with_cov.nbest]
        assert scores == sorted(scores, reverse=True)
        # the penalty only lowers scores: each hypothesis scores at most its plain length-normalised value
        assert with_cov.nbest[0].score <= zero.nbest[0].score + 1e-6
    with pytest.raises(ValueError, match="coverage penalty"):
        DecodeOptions(method="beam", coverage_penalty=-1.0).validate()


def test_int8_quantization_is_a_copy_that_decodes_through_the_same_step(tiny_checkpoint):
    translator = Translator.load(tiny_checkpoint, device="cpu")
    quantized = Translator.load(tiny_checkpoint, device="cpu", quantize=True)
    assert type(translator.model.W_s) is torch.nn.Linear and type(quantized.model.W_s) is not torch.nn.Linear
    for options in (DecodeOptions(), DecodeOptions(method="beam", beam_size=3)):
        trace = quantized.translate(SENTENCES[0], options)
        assert trace.target_pieces and trace.target_pieces[-1] == "</s>"
        np.testing.assert_allclose(np.sum(trace.attention, axis=1), 1.0, atol=1e-5)
    stepped = quantized.stepper_decode(quantized.stepper_start(SENTENCES[0])).trace  # the Step tab: the same step
    assert stepped.target_pieces == quantized.translate(SENTENCES[0]).target_pieces
