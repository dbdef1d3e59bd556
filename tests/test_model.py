import pytest
import torch

from s2s.config import Config, ConfigError
from s2s.model import Seq2Seq


def tiny(**kw) -> Seq2Seq:
    torch.manual_seed(0)
    fields = dict(src_vocab_size=30, tgt_vocab_size=40, emb_size=8, encoder_hidden_size=8, hidden_size=8,
                  attentional_size=8, dropout=0.0)
    fields.update(kw)
    return Seq2Seq(Config(**fields)).eval()


VARIANTS = [dict(attention=a, input_feeding=f, rnn=r, encoder_hidden_size=4 if a == "dot" else 8)
            for a in ("general", "dot", "additive") for f in (False, True) for r in ("lstm", "gru")]
VARIANTS += [dict(num_layers=2, rnn="lstm", input_feeding=True), dict(num_layers=2, rnn="gru")]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={w}" for k, w in v.items()))
def test_teacher_forced_forward_equals_stepwise_step(variant):
    model = tiny(**variant)
    src = torch.tensor([[5, 6, 7, 3], [5, 6, 3, 0]])
    lengths = torch.tensor([4, 3])
    tgt_in = torch.tensor([[2, 8, 9, 10], [2, 11, 12, 0]])
    expected = model(src, lengths, tgt_in).log_softmax(-1)  # (B, T, V)
    memory, state = model.encode(src, lengths)
    steps = []
    for t in range(tgt_in.size(1)):
        log_probs, state, alpha = model.step(tgt_in[:, t], state, memory)
        assert alpha.shape == (2, 4)
        assert torch.equal(alpha[1, 3], torch.tensor(0.0))  # padding gets no attention
        steps.append(log_probs)
    torch.testing.assert_close(torch.stack(steps, 1), expected, atol=1e-5, rtol=1e-5)


def test_decoder_really_reads_the_encoder():
    # The source article's bug: a decoder that ignores the encoder gives the same output for any source.
    model = tiny()
    tgt_in = torch.tensor([[2, 8, 9]])
    a = model(torch.tensor([[5, 6, 3]]), torch.tensor([3]), tgt_in)
    b = model(torch.tensor([[9, 7, 3]]), torch.tensor([3]), tgt_in)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("variant", [dict(), dict(input_feeding=True, rnn="gru")], ids=["lstm", "gru-feeding"])
def test_step_is_pure(variant):
    """Same inputs, same outputs; the inputs are not modified and nothing is left on the module."""
    model = tiny(**variant)
    memory, state = model.encode(torch.tensor([[5, 6, 3]]), torch.tensor([3]))
    inputs = [t.clone() for t in (*memory, *state) if t is not None]
    attributes, weights = set(vars(model)), {k: v.clone() for k, v in model.state_dict().items()}
    y = torch.tensor([2])
    first = model.step(y, state, memory)
    second = model.step(y, state, memory)
    for a, b in zip((first[0], *first[1], first[2]), (second[0], *second[1], second[2])):
        assert a is None and b is None or torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(inputs, [t for t in (*memory, *state) if t is not None]))
    assert set(vars(model)) == attributes and all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_padding_does_not_change_the_result():
    model = tiny()
    tgt_in = torch.tensor([[2, 8, 9]])
    alone = model(torch.tensor([[5, 6, 3]]), torch.tensor([3]), tgt_in)
    padded = model(torch.tensor([[5, 6, 3, 0, 0]]), torch.tensor([3]), tgt_in)
    torch.testing.assert_close(alone, padded, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (dict(attention="dot", encoder_hidden_size=8), "dot attention needs"),
    (dict(tie_embeddings=True, emb_size=16), "tie_embeddings needs"),
    (dict(rnn="transformer"), "rnn must be"),
    (dict(attention="luong"), "attention must be"),
    (dict(hidden_size=0), "positive integer"),
    (dict(version=99), "version 99"),
])
def test_config_rejects_impossible_models(bad, message):
    fields = dict(src_vocab_size=30, tgt_vocab_size=40, emb_size=8, encoder_hidden_size=8, hidden_size=8)
    fields.update(bad)
    with pytest.raises(ConfigError, match=message):
        Config(**fields)


def test_config_round_trips_through_json(tmp_path):
    cfg = Config(src_vocab_size=30, tgt_vocab_size=40, attention="additive", input_feeding=True)
    cfg.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == cfg
    (tmp_path / "bad.json").write_text('{"src_vocab_size": 3, "colour": "red"}')
    with pytest.raises(ConfigError, match="unknown fields: colour"):
        Config.load(tmp_path / "bad.json")
