"""Attention: scores eₜᵢ, weights αₜᵢ = softmax_i(eₜᵢ) with padding masked, context aₜ = Σᵢ αₜᵢ h̄ᵢ.

Every score is split in two halves so that the half that depends only on the
encoder (``keys``) is computed once per sentence, not once per decoder step:

- general (Luong et al. 2015, eq. 8):  eₜᵢ = h̄ᵢᵀ W_a hₜ   keys = h̄ᵢᵀ W_a
- dot     (Luong et al. 2015, eq. 8):  eₜᵢ = h̄ᵢᵀ hₜ       keys = h̄ᵢ
- additive (Bahdanau et al. 2015, eq. 6 / Luong "concat"):  eₜᵢ = vᵀ tanh(W₁h̄ᵢ + W₂hₜ)   keys = W₁h̄ᵢ

All functions take the decoder states for T steps at once, (B, T, H): T = 1
while searching, T = whole target while training without input feeding.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


# kind -> (its score as written in model cards and the Explain tab, where it comes from)
SCORES = {
    "general": ("eₜᵢ = h̄ᵢᵀ W_a hₜ", "Luong et al. 2015"),
    "dot": ("eₜᵢ = h̄ᵢᵀ hₜ", "Luong et al. 2015"),
    "additive": ("eₜᵢ = vᵀ tanh(W₁h̄ᵢ + W₂hₜ)", "Bahdanau et al. 2015"),
}


class Attention(nn.Module):
    def __init__(self, kind: str, memory_size: int, query_size: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.W_a = nn.Parameter(torch.empty(memory_size, query_size))  # h̄ᵀ W_a h
            nn.init.xavier_uniform_(self.W_a)
        elif kind == "additive":
            self.W_1 = nn.Linear(memory_size, query_size, bias=False)
            self.W_2 = nn.Linear(query_size, query_size, bias=True)
            self.v = nn.Linear(query_size, 1, bias=False)
        elif kind != "dot":
            raise ValueError(f"unknown attention {kind!r}")

    def keys(self, memory: Tensor) -> Tensor:
        """The encoder-only half of the score, once per sentence. memory: (B, S, M)."""
        if self.kind == "general":
            return memory @ self.W_a  # (B, S, H): h̄ᵢᵀ W_a
        if self.kind == "additive":
            return self.W_1(memory)  # (B, S, H): W₁h̄ᵢ
        return memory  # dot: (B, S, H) with M == H

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """eₜᵢ for query (B, T, H) and keys (B, S, H) -> (B, T, S)."""
        if self.kind == "additive":
            # (B, T, 1, H) + (B, 1, S, H) -> tanh -> v -> (B, T, S)
            return self.v(torch.tanh(self.W_2(query).unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        return query @ keys.transpose(1, 2)  # (B, T, H) @ (B, H, S) -> (B, T, S)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return (context aₜ (B, T, M), weights αₜ (B, T, S)).

        mask: (B, S) bool, True on real source tokens; padded positions get α = 0 exactly.
        """
        e = self.scores(query, keys)  # (B, T, S)
        e = e.masked_fill(~mask.unsqueeze(1), float("-inf"))
        alpha = torch.softmax(e, dim=-1)  # (B, T, S); each row sums to 1 over real tokens
        context = alpha @ memory  # (B, T, S) @ (B, S, M) -> (B, T, M)
        return context, alpha
