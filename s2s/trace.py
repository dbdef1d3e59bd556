"""The Trace: what every decode returns, as plain Python data (JSON-serialisable)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


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
    score: float  # length-normalised log-probability used for ranking
    logprob: float


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
