import pytest
import torch

from s2s.attention import Attention


@pytest.mark.parametrize("kind", ["general", "dot", "additive"])
def test_weights_sum_to_one_and_are_zero_on_padding(kind):
    torch.manual_seed(0)
    attention = Attention(kind, memory_size=6, query_size=6)
    memory = torch.randn(2, 5, 6)  # (B, S, M)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    query = torch.randn(2, 4, 6)  # (B, T, H)
    context, alpha = attention(query, attention.keys(memory), memory, mask)
    assert alpha.shape == (2, 4, 5) and context.shape == (2, 4, 6)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2, 4))
    assert torch.equal(alpha[1, :, 3:], torch.zeros(4, 2))  # exactly zero, not just small
    torch.testing.assert_close(context, alpha @ memory)


def test_general_score_matches_hand_computation():
    # e_ti = h̄_iᵀ W_a h_t with 2-dim states and a 3-token source
    attention = Attention("general", memory_size=2, query_size=2)
    with torch.no_grad():
        attention.W_a.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # h̄_1..h̄_3
    h = torch.tensor([[[2.0, 1.0]]])
    # W_a h = [1*2 + 2*1, 0*2 - 1*1] = [4, -1]; scores h̄ᵢ·[4, -1] = [4, -1, 3]
    e = attention.scores(h, attention.keys(memory))
    torch.testing.assert_close(e, torch.tensor([[[4.0, -1.0, 3.0]]]))
    _, alpha = attention(h, attention.keys(memory), memory, torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(alpha, torch.softmax(torch.tensor([[[4.0, -1.0, 3.0]]]), -1))


def test_dot_score_is_plain_inner_product():
    attention = Attention("dot", 2, 2)
    memory = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]])
    h = torch.tensor([[[1.0, 1.0]]])
    torch.testing.assert_close(attention.scores(h, attention.keys(memory)), torch.tensor([[[3.0, 2.0]]]))
