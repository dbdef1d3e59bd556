from s2s.card import model_card, validate_card
from s2s.config import Config


def test_mixed_corpus_card_names_both_corpora_with_the_right_language():
    config = Config(src_lang="de", tgt_lang="en", coverage_penalty=0.2)
    training = {"recipe": {"name": "de-en", "corpus": "mixed", "multi30k_weight": 2, "split_seed": 1234,
                           "n_test": 2000, "n_val": 1000, "lr": 0.002, "batch_tokens": 3000},
                "state": {"step": 10, "elapsed_s": 60.0, "target_tokens": 1000, "best_bleu": 20.0},
                "train_pairs": 1234}
    metrics = {"everyday/beam 5": {"test_set": "everyday", "decoding": "beam 5", "bleu": 20.0, "chrf": 50.0}}
    text = model_card(config, training, metrics)
    card = validate_card(text, config)
    assert card.data.datasets == ["tatoeba", "bentrevett/multi30k"]
    assert "English–German sentence pairs from the Tatoeba Project" in text and "2018-05-13" in text
    assert "Multi30k task 1" in text and "split by de sentence" in text and "β = 0.2" in text
    assert "English–French" not in text and "mean of" not in text and "joined" not in text
    training["recipe"]["joined_fraction"] = 0.3
    assert "0.3 extra pairs per Tatoeba pair are 2–3 random Tatoeba pairs joined" in model_card(config, training, metrics)
    training["averaging"] = "the weights are the mean of 3 saves of this run (step-02400, step-02800, step-03200)"
    assert "Unlike a single save, the weights are the mean of 3 saves" in model_card(config, training, metrics)


def test_tatoeba_card_keeps_its_french_attribution():
    config = Config(src_lang="en", tgt_lang="fr")
    text = model_card(config, {"recipe": {"name": "en-fr-tatoeba", "corpus": "tatoeba"}, "state": {}})
    assert "English–French sentence pairs" in text and "2017-09-29" in text


def test_card_writes_the_equation_of_the_models_own_attention_score():
    equations = {"general": "h̄ᵢᵀ W_a hₜ", "dot": "h̄ᵢᵀ hₜ (", "additive": "vᵀ tanh(W₁h̄ᵢ + W₂hₜ)"}
    for kind, equation in equations.items():
        text = model_card(Config(attention=kind, encoder_hidden_size=128, hidden_size=256), {"state": {}})
        assert f"**{kind}** attention" in text and f"eₜᵢ = {equation}" in text
        assert not [other for other, eq in equations.items() if other != kind and f"eₜᵢ = {eq}" in text]
