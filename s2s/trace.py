"""The Trace: what every decode returns, as plain Python data (JSON-serialisable)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Candidate:
    piece: str
    id: int
    prob: float


@dataclass
class BeamNode:
    """One hypothesis expanded by beam search: step t, parent node index, token, cumulative log-prob."""

    step: int
    parent: int  # index into Trace.beam_tree; -1 for the root
    piece: str
    id: int
    logprob: float
    status: str  # "kept" (survives into the next step), "pruned", or "finished"


@dataclass
class Hypothesis:
    text: str
    pieces: list[str]
    score: float  # length-normalised log-probability used for ranking (+ λ·back_logprob when reranked)
    logprob: float
    back_logprob: float | None = None  # reranked by the reverse model: its mean log p(source piece | this text)


@dataclass
class Trace:
    source: str
    source_pieces: list[str]  # x₁..x_S including </s>
    target_pieces: list[str]  # y₁..y_T including </s> when finished
    translation: str
    attention: list[list[float]]  # α, (T, S): row t is αₜ over the source
    step_logprobs: list[float]  # log p(yₜ | y<t, x)
    top_k: list[list[Candidate]]  # per step, the k most likely next pieces
    logprob: float
    method: str = "greedy"
    nbest: list[Hypothesis] = field(default_factory=list)
    beam_tree: list[BeamNode] = field(default_factory=list)
    notice: str = ""  # e.g. input truncated
    source_lang: str = ""  # the model's languages (config.src_lang, tgt_lang): coverage skips function words
    target_lang: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict) -> "Trace":
        data = dict(data)
        data["top_k"] = [[Candidate(**c) for c in row] for row in data.get("top_k", [])]
        data["nbest"] = [Hypothesis(**h) for h in data.get("nbest", [])]
        data["beam_tree"] = [BeamNode(**n) for n in data.get("beam_tree", [])]
        return cls(**data)


# ---------------------------------------------------------------------- a trace from outside
class TraceTooLarge(ValueError):
    """A trace larger than any decode of this code makes."""


@dataclass(frozen=True)
class TraceLimits:
    """The largest trace a decode makes, so the largest one a client may send back (the merge switch, exports):
    drawing a 1000 × 1000 trace took 14 s of CPU and 445 MB. At the limits a view takes about a second."""

    source_pieces: int = 1024  # s2s.config.MAX_SRC_TOKENS: longer inputs are truncated
    target_pieces: int = 400  # s2s.search.max_target_length's cap
    cells: int = 256 * 400  # α entries: a bundled model's longest input (256 pieces) × the longest output
    candidates: int = 64  # per step (the app records 5)
    nbest: int = 64  # the widest beam
    tree_nodes: int = 2 * 64 * 400 + 1  # beam search adds 2 × beam nodes per step
    piece_chars: int = 100  # a SentencePiece piece is a few characters
    text_chars: int = 20_000  # source, translation, notice


def check_trace_data(data: Any, limits: TraceLimits = TraceLimits()) -> None:
    """Refuse trace data (JSON from a client) before anything is built from it: ValueError when it is not a
    trace, TraceTooLarge when it is larger than `limits`. Costs one pass over the data (~10 ms at the limits)."""
    if not isinstance(data, dict):
        raise ValueError("a trace is a JSON object")
    source = _list(data, "source_pieces", limits.source_pieces)
    target = _list(data, "target_pieces", limits.target_pieces)
    attention = _list(data, "attention", limits.target_pieces)
    if len(source) * len(attention) > limits.cells:
        raise TraceTooLarge(f"{len(attention):,} × {len(source):,} attention weights; at most {limits.cells:,}")
    if len(attention) != len(target):
        raise ValueError("attention needs one row per target piece")
    _texts(source + target, "pieces", limits.piece_chars)
    for row in attention:
        if not isinstance(row, list) or len(row) != len(source):
            raise ValueError("attention rows do not match the source pieces")
        if not all(type(a) in (int, float) and math.isfinite(a) for a in row):
            raise ValueError("attention weights must be finite numbers")
    _texts([data.get(key, "") for key in ("source", "translation", "notice", "method")], "texts", limits.text_chars)
    for step in _list(data, "top_k", limits.target_pieces):
        if not isinstance(step, list) or len(step) > limits.candidates:
            raise TraceTooLarge(f"more than {limits.candidates} candidates at a step")
        _texts([_field(c, "piece") for c in step], "pieces", limits.piece_chars)
    _list(data, "step_logprobs", limits.target_pieces)
    for hypothesis in _list(data, "nbest", limits.nbest):
        pieces = _field(hypothesis, "pieces")
        if not isinstance(pieces, list) or len(pieces) > limits.target_pieces:
            raise TraceTooLarge(f"an n-best hypothesis longer than {limits.target_pieces} pieces")
        _texts(pieces, "pieces", limits.piece_chars)
        _texts([_field(hypothesis, "text")], "texts", limits.text_chars)
    _texts([_field(node, "piece") for node in _list(data, "beam_tree", limits.tree_nodes)], "pieces",
           limits.piece_chars)


def _list(data: dict, key: str, most: int) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    if len(value) > most:
        raise TraceTooLarge(f"{len(value):,} {key}; at most {most:,}")
    return value


def _field(item: Any, key: str) -> Any:
    if not isinstance(item, dict):
        raise ValueError("a trace entry must be a JSON object")
    return item.get(key)


def _texts(values: list, what: str, most: int) -> None:
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{what} must be strings")
        if len(value) > most:
            raise TraceTooLarge(f"{what} of more than {most:,} characters")
