"""LSTM (or GRU) encoder–decoder with attention (Luong et al. 2015), written to read like the equations.

    h̄₁..h̄_S = BiRNN(embed(x))                      encoder memory        (B, S, M)
    hₜ       = RNN(embed(yₜ₋₁) [; h̃ₜ₋₁], hₜ₋₁)      decoder state         (B, H)
    αₜ, aₜ   = attention(hₜ, h̄)                     weights, context      (B, S), (B, M)
    h̃ₜ       = tanh(W_c [aₜ; hₜ])                   attentional state     (B, A)
    p(yₜ)    = softmax(W_s h̃ₜ)                      output distribution   (B, V)

Unlike the source article's sample code, the decoder really reads the encoder:
every output goes through aₜ. Without input feeding hₜ does not depend on
attention, so teacher-forced training runs the decoder RNN over the whole target
in one fused call and computes all αₜ rows and all projections as batched
matrix products (`forward`). Search moves one token at a time through the pure
`step`, which shares `readout` with `forward`, so what the UI shows is what the
model computes.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .attention import Attention
from .config import Config


class Memory(NamedTuple):
    """What the decoder reads from the encoder; computed once per sentence."""

    outputs: Tensor  # (B, S, M) h̄
    keys: Tensor  # (B, S, H) encoder half of the attention score
    mask: Tensor  # (B, S) bool, True on real tokens

    def select(self, index: Tensor) -> "Memory":
        return Memory(*(t.index_select(0, index) for t in self))


class DecoderState(NamedTuple):
    """Everything step t+1 needs from step t. Plain tensors, never stored on the module."""

    h: Tensor  # (L, B, H)
    c: Tensor | None  # (L, B, H) LSTM cell; None for GRU
    feed: Tensor | None  # (B, A) previous h̃ when input feeding, else None

    def select(self, index: Tensor) -> "DecoderState":
        return DecoderState(
            self.h.index_select(1, index),
            None if self.c is None else self.c.index_select(1, index),
            None if self.feed is None else self.feed.index_select(0, index),
        )


def _rnn(kind: str, *args, **kwargs) -> nn.RNNBase:
    return (nn.LSTM if kind == "lstm" else nn.GRU)(*args, batch_first=True, **kwargs)


class Encoder(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.src_vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        self.rnn = _rnn(cfg.rnn, cfg.emb_size, cfg.encoder_hidden_size, num_layers=cfg.num_layers,
                        bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)
        self.directions = 2 if cfg.bidirectional else 1

    def forward(self, src: Tensor, lengths: Tensor, embedded: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor | None]:
        """src (B, S) ids, lengths (B,) -> memory (B, S, M), final h and c (L, B, M).

        embedded (B, S, E), when given, is read instead of embed(src): attribution (s2s.explain) takes
        gradients with respect to the source embeddings and moves them along a path from a baseline."""
        x = self.dropout(self.embed(src) if embedded is None else embedded)  # (B, S, E)
        if embedded is not None and bool((lengths == src.size(1)).all()):
            # no padding to skip: unpacked, the RNN's backward pass does not copy the whole sequence per step
            memory, final = self.rnn(x)  # (B, S, M)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, final = self.rnn(packed)
            memory, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))  # (B, S, M)
        h, c = final if isinstance(final, tuple) else (final, None)
        return memory, self._join_directions(h), None if c is None else self._join_directions(c)

    def _join_directions(self, state: Tensor) -> Tensor:
        # (L*D, B, He) -> (L, B, D*He): forward and backward final states side by side
        layers_dirs, batch, size = state.shape
        state = state.view(layers_dirs // self.directions, self.directions, batch, size)
        return torch.cat(state.unbind(1), dim=-1)


class Seq2Seq(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        cfg = self.config = config
        self.encoder = Encoder(cfg)
        # the encoder's final state (both directions) initialises the decoder: h₀ = tanh(W_b [h→; h←])
        self.bridge_h = nn.Linear(cfg.memory_size, cfg.hidden_size)
        self.bridge_c = nn.Linear(cfg.memory_size, cfg.hidden_size) if cfg.rnn == "lstm" else None
        self.embed = nn.Embedding(cfg.tgt_vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        feed_size = cfg.attentional_size if cfg.input_feeding else 0
        self.rnn = _rnn(cfg.rnn, cfg.emb_size + feed_size, cfg.hidden_size, num_layers=cfg.num_layers,
                        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.attention = Attention(cfg.attention, cfg.memory_size, cfg.hidden_size)
        self.W_c = nn.Linear(cfg.memory_size + cfg.hidden_size, cfg.attentional_size, bias=False)
        self.W_s = nn.Linear(cfg.attentional_size, cfg.tgt_vocab_size)
        if cfg.tie_embeddings:
            self.W_s.weight = self.embed.weight  # one matrix to read and write target words
        self.dropout = nn.Dropout(cfg.dropout)

    # ------------------------------------------------------------------ encoder
    def encode(self, src: Tensor, lengths: Tensor, embedded: Tensor | None = None) -> tuple[Memory, DecoderState]:
        """src (B, S), lengths (B,) -> (memory, initial decoder state); `embedded`: see Encoder.forward."""
        outputs, h_final, c_final = self.encoder(src, lengths, embedded)
        mask = torch.arange(src.size(1), device=src.device)[None, :] < lengths.to(src.device)[:, None]  # (B, S)
        memory = Memory(outputs, self.attention.keys(outputs), mask)
        h0 = torch.tanh(self.bridge_h(h_final))  # (L, B, H)
        c0 = None if self.bridge_c is None else torch.tanh(self.bridge_c(c_final))
        feed0 = outputs.new_zeros(src.size(0), self.config.attentional_size) if self.config.input_feeding else None
        return memory, DecoderState(h0, c0, feed0)

    # ------------------------------------------------------------------ decoder
    def readout(self, h: Tensor, memory: Memory) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder states h (B, T, H) -> logits (B, T, V), h̃ (B, T, A), α (B, T, S)."""
        context, alpha = self.attention(h, memory.keys, memory.outputs, memory.mask)  # (B,T,M), (B,T,S)
        h_tilde = torch.tanh(self.W_c(torch.cat([context, h], dim=-1)))  # (B, T, A)
        logits = self.W_s(self.dropout(h_tilde))  # (B, T, V)
        return logits, h_tilde, alpha

    def _advance(self, y_prev: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Tensor]:
        """One decoder step on ids y_prev (B,) -> logits (B, V), new state, α (B, S)."""
        x = self.dropout(self.embed(y_prev)).unsqueeze(1)  # (B, 1, E)
        if state.feed is not None:
            x = torch.cat([x, state.feed.unsqueeze(1)], dim=-1)  # (B, 1, E + A)
        h, c = self._rnn_cell(x[:, 0], state.h, state.c)  # (L, B, H) each
        logits, h_tilde, alpha = self.readout(h[-1].unsqueeze(1), memory)
        feed = h_tilde[:, 0] if state.feed is not None else None
        return logits[:, 0], DecoderState(h, c, feed), alpha[:, 0]

    def _rnn_cell(self, x: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One time step of self.rnn, layer by layer, with the same weights as the fused call.

        nn.LSTM on a single step pays a large fixed cost per call on CPU (~10x the arithmetic); the cell
        functions do the same math without it. x (B, I), h and c (L, B, H) -> new h, c (L, B, H).
        """
        hs, cs = [], []
        for layer in range(self.config.num_layers):
            weights = [getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if c is None:
                h_l = torch.gru_cell(x, h[layer], *weights)
            else:
                h_l, c_l = torch.lstm_cell(x, (h[layer], c[layer]), *weights)
                cs.append(c_l)
            hs.append(h_l)
            # between stacked layers nn.LSTM applies dropout while training; do the same
            x = F.dropout(h_l, self.rnn.dropout, self.training) if layer + 1 < self.config.num_layers else h_l
        return torch.stack(hs), torch.stack(cs) if cs else None

    def step(self, y_prev: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Tensor]:
        """The one way a decoder moves: y_prev (B,) -> (log p(yₜ) (B, V), next state, αₜ (B, S)). Pure."""
        logits, state, alpha = self._advance(y_prev, state, memory)
        return torch.log_softmax(logits.float(), dim=-1), state, alpha

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: tgt_in (B, T) starts with <s>; returns logits (B, T, V) for the next tokens."""
        memory, state = self.encode(src, src_lengths)
        if self.config.input_feeding:  # each step needs the previous h̃: no way around the loop
            steps = []
            for t in range(tgt_in.size(1)):
                logits, state, _ = self._advance(tgt_in[:, t], state, memory)
                steps.append(logits)
            return torch.stack(steps, dim=1)
        x = self.dropout(self.embed(tgt_in))  # (B, T, E)
        rnn_state = state.h if state.c is None else (state.h, state.c)
        h, _ = self.rnn(x, rnn_state)  # (B, T, H): the whole target in one fused call
        logits, _, _ = self.readout(h, memory)
        return logits

    def loss(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor,
             label_smoothing: float = 0.0) -> Tensor:
        """Mean cross-entropy per target token (padding ignored)."""
        logits = self(src, src_lengths, tgt_in)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=self.config.pad_id,
                               label_smoothing=label_smoothing)
