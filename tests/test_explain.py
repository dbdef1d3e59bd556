"""s2s.explain, s2s.trajectories and the Explain tab's service: attribution beside attention (issue 14)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from s2s import explain, search, trajectories
from s2s.api import Translator
from s2s.checkpoint import load_checkpoint, save_checkpoint
from s2s.config import Config
from s2s.model import Seq2Seq
from tiny import tiny_config, tiny_tokenizers

SENTENCE = "A woman sits at a dark bar."
TRANSLATION = "Eine Frau sitzt an einer dunklen Bar."
COMPLETENESS_TOLERANCE = 0.01  # nats: |Σᵢ Aₜᵢ − (fₜ(x) − fₜ(e′))| with 64 steps on the tiny model
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def translator(tiny_checkpoint) -> Translator:
    return Translator.load(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def attribution(translator) -> explain.Attribution:
    source, _ = translator.encode_source(SENTENCE)
    return explain.attribute(translator.model, source, explain.greedy_ids(translator.model, source), steps=64)


def test_rows_sum_to_one(attribution):
    for matrix in (attribution.alpha, attribution.integrated, attribution.gradient_input):
        assert matrix.shape == (len(attribution.target_ids), len(attribution.source_ids))
        np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-5)
        assert (matrix >= 0).all()


def test_merged_rows_sum_to_one_and_follow_the_heatmap_rule(translator, attribution):
    source = translator.source_tokenizer.pieces(attribution.source_ids)
    target = translator.target_tokenizer.pieces(attribution.target_ids)
    view = explain.map_view(attribution.integrated, source, target, merge_words=True)
    np.testing.assert_allclose(view.matrix.sum(1), 1.0, atol=1e-5)
    assert view.merged and len(view.source_labels) <= len(source) and "</s>" in view.source_labels


def test_integrated_gradients_are_complete(attribution):
    assert attribution.completeness_error.max() < COMPLETENESS_TOLERANCE
    # the signed attributions add up to the change of log p from the baseline to the sentence
    np.testing.assert_allclose(attribution.integrated_raw.sum(1),
                               attribution.step_logprobs - attribution.baseline_logprobs, atol=COMPLETENESS_TOLERANCE)


def test_completeness_gap_shrinks_with_more_steps(translator):
    source, _ = translator.encode_source(SENTENCE)
    target = explain.greedy_ids(translator.model, source)
    coarse = explain.attribute(translator.model, source, target, steps=4).completeness_error.mean()
    fine = explain.attribute(translator.model, source, target, steps=32).completeness_error.mean()
    assert fine < coarse


def one_position_model(position_token: int = 7) -> Seq2Seq:
    """A model whose output depends on the source only through the token `position_token`: the encoder reads
    embedding dimension 0 alone, which is 0 for every other token (their other dimensions are not), has no
    recurrence (each h̄ᵢ sees only xᵢ), the decoder starts from zero, and attention is uniform."""
    torch.manual_seed(0)
    model = Seq2Seq(Config(src_vocab_size=20, tgt_vocab_size=20, emb_size=8, encoder_hidden_size=8, hidden_size=8,
                           dropout=0.0)).eval()
    with torch.no_grad():
        for name, weight in model.encoder.rnn.named_parameters():
            if name.startswith("weight_hh"):
                weight.zero_()
            if name.startswith("weight_ih"):
                weight[:, 1:] = 0.0
        model.encoder.embed.weight[:, 0] = 0.0
        model.encoder.embed.weight[position_token, 0] = 3.0
        for bridge in (model.bridge_h, model.bridge_c):
            bridge.weight.zero_()
            bridge.bias.zero_()
        model.attention.W_a.zero_()
    return model


def test_attribution_concentrates_on_the_only_position_the_output_depends_on():
    model = one_position_model()
    source, target = [5, 6, 7, 8, 3], [4, 9, 11, 3]
    result = explain.attribute(model, source, target, steps=32)
    moved = np.abs(result.step_logprobs - result.baseline_logprobs) > 1e-4
    assert moved.any()
    for matrix in (result.integrated, result.gradient_input):
        assert (matrix[moved, 2] > 0.99).all(), matrix
    # attention, uniform here, does not single out the position: the maps disagree, and the agreement says so
    assert np.allclose(result.alpha, 0.2, atol=1e-6)
    assert not any(explain.agreement(result.alpha[moved], result.integrated[moved]).top1)


def test_score_of_a_given_translation_is_the_sum_of_forced_step_logprobs(translator):
    source, _ = translator.encode_source(SENTENCE)
    target = translator.target_tokenizer.encode(TRANSLATION) + [translator.config.eos_id]
    result = explain.attribute(translator.model, source, target, steps=8)
    model = translator.model
    with torch.inference_mode():
        memory, state = model.encode(torch.tensor([source]), torch.tensor([len(source)]))
        forced = search.decode(model, memory, state, torch.tensor([len(target)]), prefixes=[target])[0]
    assert forced.ids == target
    assert result.score == pytest.approx(forced.logprob, abs=1e-4)
    np.testing.assert_allclose(result.step_logprobs, forced.step_logprobs, atol=1e-4)
    np.testing.assert_allclose(result.alpha, forced.alpha, atol=1e-5)
    assert result.greedy_ids.tolist() == forced.top_ids[:, 0].tolist()  # the model's own choice, same prefix


def test_the_model_own_translation_agrees_with_its_greedy_choices(translator, attribution):
    assert attribution.greedy_ids.tolist() == attribution.target_ids


@pytest.mark.parametrize("config", [dict(rnn="gru", input_feeding=True), dict(num_layers=2, attention="additive"),
                                    dict(bidirectional=False, attention="dot")])
def test_other_architectures_are_complete_and_score_like_forced_decoding(config):
    torch.manual_seed(0)
    model = Seq2Seq(Config(src_vocab_size=30, tgt_vocab_size=30, emb_size=16, encoder_hidden_size=16,
                           hidden_size=16, dropout=0.0, **config)).eval()
    source, target = [5, 6, 7, 8, 3], [9, 10, 11, 3]
    result = explain.attribute(model, source, target, steps=64)
    np.testing.assert_allclose(result.integrated.sum(1), 1.0, atol=1e-5)
    assert result.completeness_error.max() < COMPLETENESS_TOLERANCE
    with torch.inference_mode():
        memory, state = model.encode(torch.tensor([source]), torch.tensor([len(source)]))
        forced = search.decode(model, memory, state, torch.tensor([len(target)]), prefixes=[target])[0]
    np.testing.assert_allclose(result.step_logprobs, forced.step_logprobs, atol=1e-5)


def test_agreement_and_js_distance():
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    same = explain.agreement(p, p)
    assert same.top1 == [True, True] and np.allclose(same.js_distance, 0.0, atol=1e-7)
    disjoint = explain.agreement(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert disjoint.top1 == [False] and disjoint.js_distance[0] == pytest.approx(1.0)
    assert disjoint.summary(merged=True) == ("attention and attribution agree on the most important source word "
                                             "for 0 of 1 target words")


# ---------------------------------------------------------------------- the three attention scores
def score_checkpoints(folder: Path) -> dict[str, Path]:
    """Three tiny checkpoints that differ only in the attention score (dot needs memory size == hidden size)."""
    source, target = tiny_tokenizers()
    out = {}
    for kind in ("general", "dot", "additive"):
        torch.manual_seed(0)
        model = Seq2Seq(tiny_config(source, target, encoder_hidden_size=16, hidden_size=32, attention=kind))
        out[kind] = save_checkpoint(folder / f"en-de-{kind}", model, source, target,
                                    training={"recipe": {"name": f"en-de-{kind}", "corpus": "toy"}, "state": {}})
    return out


def assert_differ_only_in_attention(models: list[Seq2Seq]) -> None:
    assert explain.differences_besides_attention(models) == []
    kinds = [m.config.attention for m in models]
    assert len(set(kinds)) == len(models)
    keys = [set(m.state_dict()) for m in models]
    common = set.intersection(*keys)
    assert all(k.startswith("attention.") for k in set.union(*keys) - common)
    assert all(type(m.attention).__name__ == "Attention" for m in models)


def test_three_score_models_load_and_differ_only_in_attention(tmp_path):
    folders = score_checkpoints(tmp_path)
    models = [load_checkpoint(folders[kind], "cpu")[0] for kind in ("general", "dot", "additive")]
    assert_differ_only_in_attention(models)
    other = Seq2Seq(Config(**{**models[0].config.to_dict(), "hidden_size": 64, "attentional_size": 32,
                              "encoder_hidden_size": 32}))
    assert explain.differences_besides_attention([models[0], other])  # a size difference is reported


BUNDLED = [ROOT / "checkpoints" / f"en-de-{kind}" for kind in ("general", "dot", "additive")]


@pytest.mark.skipif(not all((f / "config.json").is_file() for f in BUNDLED),
                    reason="the bundled en-de-{general,dot,additive} checkpoints are not here")
def test_bundled_three_score_models_differ_only_in_attention():
    assert_differ_only_in_attention([load_checkpoint(folder, "cpu")[0] for folder in BUNDLED])


def test_compare_attention_scores_with_the_models_present(tmp_path, monkeypatch):
    from s2s import service
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tmp_path))
    result = service.compare_attention_scores(SENTENCE)
    assert "None of the three" in result["note"] and len(result["figures"]) == 3 and result["table"] == []
    score_checkpoints(tmp_path)
    shutil.rmtree(tmp_path / "en-de-dot")
    result = service.compare_attention_scores(SENTENCE, merge_words=True)
    assert [row[0] for row in result["table"]] == ["general", "additive"]
    assert "differ only in the attention score" in result["note"] and "en-de-dot" in result["note"]
    assert result["table"][0][3:] == ["–", "–"]  # no metrics.json in these folders


# ---------------------------------------------------------------------- the service
def test_explain_translation_and_views(tiny_checkpoint, monkeypatch):
    from s2s import service
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tiny_checkpoint.parent))
    name = tiny_checkpoint.name
    own = service.explain_translation(name, SENTENCE, "", 8)
    assert "agree on the most important source piece for" in own["summary"]
    assert own["result"]["given"] is False and own["translation"]
    given = service.explain_translation(name, SENTENCE, TRANSLATION, 8, "gradient × input", True)
    assert "translation given" in given["summary"] and "source word for" in given["summary"]
    assert len(given["rows"]) == len(explain.map_view(np.array(given["result"]["alpha"]),
                                                      given["result"]["source_pieces"],
                                                      given["result"]["target_pieces"], True).target_labels)
    views = service.explain_views(given["result"], "integrated gradients", False)
    assert len(views["rows"]) == len(given["result"]["target_pieces"])
    for figure in (views["attention"], views["attribution"]):
        assert figure.layout.xaxis.tickmode == "array"
        assert list(figure.layout.xaxis.ticktext) == [s.replace("<", "&lt;").replace(">", "&gt;")
                                                      for s in given["result"]["source_pieces"]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(text=""), "Type a sentence"),
    (dict(steps=1000), "steps must be between"),
    (dict(steps="many"), "must be a number"),
    (dict(method="saliency"), "Attribution must be one of"),
    (dict(text="dog " * 200), "Explain handles up to"),
    (dict(translation="Hund " * 200), "Explain handles up to"),
])
def test_explain_refuses_bad_input_with_a_message(tiny_checkpoint, monkeypatch, kwargs, message):
    from s2s import service
    monkeypatch.setenv("S2S_CHECKPOINTS", str(tiny_checkpoint.parent))
    args = dict(model=tiny_checkpoint.name, text=SENTENCE, translation="", steps=8, method="integrated gradients")
    with pytest.raises(service.UserError, match=message):
        service.explain_translation(**{**args, **kwargs})
    with pytest.raises(service.UserError, match="Explain first"):
        service.explain_views(None)


# ---------------------------------------------------------------------- trajectories
def test_pca_basis_is_orthonormal_and_ordered():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1, 0.1])
    basis = trajectories.fit_basis(points)
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(2), atol=1e-8)
    assert abs(basis.components[0, 0]) > 0.99 and abs(basis.components[1, 1]) > 0.99
    assert basis.explained[0] > basis.explained[1] > 0
    assert basis.project(points).shape == (300, 2)


def test_state_bases_are_cached_in_the_folder_and_refitted_for_other_weights(tiny_checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, folder)
    translator = Translator.load(folder, device="cpu")
    monkeypatch.setattr(trajectories, "validation_sample",
                        lambda src, tgt: ([(SENTENCE, TRANSLATION), ("A dog runs.", None)], "2 test sentences"))

    def encode(source, reference):
        ids, _ = translator.encode_source(source)
        target = (translator.target_tokenizer.encode(reference) + [translator.config.eos_id] if reference
                  else explain.greedy_ids(translator.model, ids))
        return ids, target

    bases = trajectories.bases_for(translator.model, encode, folder)
    assert (folder / trajectories.PCA_FILE).is_file() and bases.sample == "2 test sentences"
    weights = trajectories.fingerprint(folder)
    again = trajectories.load_bases(folder / trajectories.PCA_FILE, weights)
    np.testing.assert_allclose(again.encoder.components, bases.encoder.components, atol=1e-6)
    assert trajectories.load_bases(folder / trajectories.PCA_FILE, "other weights") is None
    encoder, decoder = trajectories.states(translator.model, [encode(SENTENCE, TRANSLATION)])[0]
    assert encoder.shape[1] == translator.config.memory_size and decoder.shape[1] == translator.config.hidden_size


def test_state_trajectories_service(tiny_checkpoint, tmp_path, monkeypatch):
    from s2s import service
    folder = tmp_path / "models"
    shutil.copytree(tiny_checkpoint, folder / "tiny")
    monkeypatch.setenv("S2S_CHECKPOINTS", str(folder))
    monkeypatch.setattr(trajectories, "validation_sample",
                        lambda src, tgt: ([(SENTENCE, TRANSLATION)], "1 test sentence"))

    def read_only(path, data):
        raise PermissionError(f"read-only: {path}")

    monkeypatch.setattr(trajectories, "atomic_write", read_only)  # the basis stays in memory only
    result = service.state_trajectories("tiny", SENTENCE)
    assert not (folder / "tiny" / trajectories.PCA_FILE).exists()
    assert "1 test sentence" in result["note"]
    assert [t.name for t in result["figure"].data] == ["encoder h̄ᵢ", "decoder hₜ"]
