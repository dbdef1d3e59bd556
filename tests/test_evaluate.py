import sacrebleu

from s2s.api import DecodeOptions, Translator
from s2s.evaluate import corpus_bleu, evaluate
from tiny import toy_pairs


def test_evaluation_of_a_fixed_tiny_checkpoint_is_stable(tiny_checkpoint):
    translator = Translator.load(tiny_checkpoint, device="cpu")
    pairs = toy_pairs()[:20]  # the pairs the tiny model was trained on
    sources, refs = [s for s, _ in pairs], [[t] for _, t in pairs]
    first = evaluate(translator, sources, refs, DecodeOptions())
    second = evaluate(translator, sources, refs, DecodeOptions())
    assert first["bleu"] == second["bleu"] and first["chrf"] == second["chrf"]
    direct = sacrebleu.corpus_bleu(first["hypotheses"], [[t for _, t in pairs]])
    assert first["bleu"] == direct.score
    assert first["bleu"] > 20  # it has seen these pairs


def test_multi_reference_bleu_uses_every_reference():
    hyps = ["the cat sat on the red mat today", "a big dog runs in the green park"]
    one = corpus_bleu(hyps, [["the cat sat on the red mat today"], ["one dog walks across a park"]]).score
    two = corpus_bleu(hyps, [["the cat sat on the red mat today"],
                             ["one dog walks across a park", "a big dog runs in the green park"]]).score
    assert two > one
