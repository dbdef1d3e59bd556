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


def test_by_sentence_scores_the_sentences_translated_one_at_a_time_and_joined(tiny_checkpoint):
    translator = Translator.load(tiny_checkpoint, device="cpu")
    (first, first_ref), (second, second_ref) = toy_pairs()[:2]
    alone = translator.translate_batch([first, second])
    result = evaluate(translator, [f"{first} {second}", ""], [[f"{first_ref} {second_ref}"], [""]], DecodeOptions(),
                      by_sentence=True)
    assert result["hypotheses"] == [f"{alone[0]} {alone[1]}", ""]
    assert result["decoding"] == "greedy, by sentence"
