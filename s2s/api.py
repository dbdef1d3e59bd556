"""Text in, Trace out: the one façade the CLI, the app and the benchmarks call."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import search
from .checkpoint import load_checkpoint
from .model import Seq2Seq
from .tokenizer import Tokenizer
from .trace import BeamNode, Candidate, Hypothesis, Trace

DEFAULT_TOP_K = 5


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but CUDA is not available on this machine")
    return torch.device(device)


@dataclass
class DecodeOptions:
    method: str = "greedy"  # greedy | beam | sample
    beam_size: int = 5
    length_penalty: float | None = None  # None: the model's own default (config.length_penalty)
    nbest: int = 1
    temperature: float = 1.0
    top_k_sampling: int = 0
    top_p: float = 1.0
    seed: int | None = None
    max_ratio: float = 2.0

    def validate(self) -> None:
        if self.method not in ("greedy", "beam", "sample"):
            raise ValueError(f"decoding method must be greedy, beam or sample, not {self.method!r}")
        if not 1 <= int(self.beam_size) <= 64:
            raise ValueError("beam width must be between 1 and 64")
        if not 1 <= int(self.nbest) <= int(self.beam_size) and self.method == "beam":
            raise ValueError("n-best must be between 1 and the beam width")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")
        if self.length_penalty is not None and not 0 <= self.length_penalty <= 5:
            raise ValueError("length penalty must be between 0 and 5")
        if not 0 < self.top_p <= 1:
            raise ValueError("top-p must be in (0, 1]")


@dataclass
class StepperState:
    """Step-by-step decoding as plain data: copy it per user, nothing points into the model."""

    source: str
    target_ids: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)  # which steps the user chose by hand
    done: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class Translator:
    def __init__(self, model: Seq2Seq, source: Tokenizer, target: Tokenizer, name: str = "model",
                 device: str | torch.device = "cpu") -> None:
        self.device = pick_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        self.source, self.target, self.name = source, target, name
        self.config = model.config

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", name: str | None = None) -> "Translator":
        target_device = pick_device(device)
        model, source, target = load_checkpoint(path, target_device)
        return cls(model, source, target, name or Path(path).name, target_device)

    # ------------------------------------------------------------------ encoding
    def encode_source(self, text: str) -> tuple[list[int], str]:
        """Source ids ending with </s>, truncated to config.max_src_tokens (with a notice)."""
        ids = self.source.encode(text)
        notice = ""
        limit = self.config.max_src_tokens - 1
        if len(ids) > limit:
            notice = f"Input truncated to its first {limit} of {len(ids)} subword pieces."
            ids = ids[:limit]
        return ids + [self.config.eos_id], notice

    def _encode_batch(self, id_lists: list[list[int]]):
        lengths = torch.tensor([len(ids) for ids in id_lists])
        src = torch.full((len(id_lists), int(lengths.max())), self.config.pad_id, dtype=torch.long)
        for b, ids in enumerate(id_lists):
            src[b, :len(ids)] = torch.tensor(ids)
        memory, state = self.model.encode(src.to(self.device), lengths.to(self.device))
        return memory, state, lengths

    # ------------------------------------------------------------------ decoding
    @torch.inference_mode()
    def _decode(self, id_lists: list[list[int]], options: DecodeOptions, prefixes=None, record_tree=False,
                top_k: int = DEFAULT_TOP_K) -> list[list[search.Decoded] | search.BeamResult]:
        memory, state, lengths = self._encode_batch(id_lists)
        max_len = search.max_target_length(lengths, ratio=options.max_ratio)
        if options.method == "beam" and not prefixes:
            alpha = self.config.length_penalty if options.length_penalty is None else options.length_penalty
            return search.beam_search(self.model, memory, state, max_len, beam_size=int(options.beam_size),
                                      alpha=alpha, nbest=int(options.nbest), top_k=top_k,
                                      record_tree=record_tree)
        chooser = search.argmax_chooser
        if options.method == "sample":
            chooser = search.sampling_chooser(options.temperature, int(options.top_k_sampling), options.top_p,
                                              options.seed)
        return [search.BeamResult([d]) for d in
                search.decode(self.model, memory, state, max_len, chooser, prefixes=prefixes, top_k=top_k)]

    def translate(self, text: str, options: DecodeOptions | None = None, prefix: list[int] | None = None,
                  record_tree: bool = True) -> Trace:
        """One sentence -> Trace with attention, candidates, n-best and (beam) the search tree."""
        options = options or DecodeOptions()
        options.validate()
        if not text or not text.strip():
            return Trace(source=text or "", source_pieces=[], target_pieces=[], translation="", attention=[],
                         step_logprobs=[], top_k=[], logprob=0.0, method=options.method)
        src_ids, notice = self.encode_source(text)
        result = self._decode([src_ids], options, prefixes=[prefix] if prefix else None,
                              record_tree=record_tree)[0]
        return self._trace(text, src_ids, result, options.method, notice)

    def translate_batch(self, texts: list[str], options: DecodeOptions | None = None,
                        batch_size: int = 64) -> list[str]:
        """Many sentences, fast: length-sorted batches, results in the original order."""
        options = options or DecodeOptions()
        options.validate()
        encoded = [self.encode_source(t)[0] if t and t.strip() else None for t in texts]
        order = sorted((i for i, e in enumerate(encoded) if e is not None), key=lambda i: len(encoded[i]))
        out = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            results = self._decode([encoded[i] for i in chunk], options, top_k=0)
            for i, result in zip(chunk, results):
                out[i] = self.target.decode(result.nbest[0].ids)
        return out

    def _trace(self, text: str, src_ids: list[int], result: search.BeamResult, method: str, notice: str) -> Trace:
        best = result.nbest[0]
        pieces = self.target.pieces
        top = [[Candidate(piece=p, id=int(i), prob=float(pr)) for p, i, pr in zip(pieces(ids), ids, probs)]
               for ids, probs in zip(best.top_ids.tolist(), best.top_probs.tolist())]
        nbest = [Hypothesis(text=self.target.decode(h.ids), pieces=pieces(h.ids), score=float(h.score),
                            logprob=h.logprob) for h in result.nbest]
        tree = [BeamNode(**{**node, "piece": pieces([node["id"]])[0]}) for node in result.tree]
        return Trace(source=text, source_pieces=self.source.pieces(src_ids), target_pieces=pieces(best.ids),
                     translation=self.target.decode(best.ids), attention=best.alpha.tolist(),
                     step_logprobs=[float(x) for x in best.step_logprobs], top_k=top, logprob=best.logprob,
                     method=method, nbest=nbest, beam_tree=tree, notice=notice)

    # ------------------------------------------------------------------ step by step
    def stepper_start(self, text: str) -> StepperState:
        return StepperState(source=text, done=not text.strip())

    def stepper_advance(self, state: StepperState, forced_token: int | str | None = None) -> StepperState:
        """One more step: the model's best piece, or what the user forces (an id, a piece, or a word that
        is split into pieces and appended whole)."""
        state = copy.deepcopy(state)
        if state.done:
            return state
        if forced_token is None:
            trace = self.stepper_trace(state, extra_step=True)
            token = int(trace.top_k[-1][0].id) if trace.top_k else self.config.eos_id
            tokens = [token]
        else:
            tokens = self.piece_ids(forced_token)
        state.target_ids.extend(tokens)
        state.forced.extend([forced_token is not None] * len(tokens))
        token = tokens[-1]
        src_len = len(self.encode_source(state.source)[0])
        limit = int(search.max_target_length(torch.tensor([src_len]))[0])
        state.done = token == self.config.eos_id or len(state.target_ids) >= limit
        return state

    def stepper_back(self, state: StepperState) -> StepperState:
        state = copy.deepcopy(state)
        if state.target_ids:
            state.target_ids.pop()
            state.forced.pop()
        state.done = False
        return state

    def stepper_run(self, state: StepperState) -> StepperState:
        """Greedy to the end from the current prefix (keeping what the user forced)."""
        state = copy.deepcopy(state)
        if state.done:
            return state
        trace = self.translate(state.source, DecodeOptions(), prefix=state.target_ids, record_tree=False)
        ids = [self.target.sp.piece_to_id(p) for p in trace.target_pieces]
        state.forced += [False] * (len(ids) - len(state.target_ids))
        state.target_ids = ids
        state.done = True
        return state

    def stepper_trace(self, state: StepperState, extra_step: bool = False) -> Trace:
        """The Trace of the prefix so far; extra_step adds the model's next prediction (for its top-k and α)."""
        if not state.source.strip():
            return self.translate("")
        src_ids, notice = self.encode_source(state.source)
        prefix = list(state.target_ids)
        memory, dec_state, _ = self._encode_batch([src_ids])
        cfg = self.config
        y = torch.tensor([cfg.bos_id], device=self.device)
        steps = prefix + ([None] if extra_step and not state.done else [])
        alphas, logps, tops = [], [], []
        with torch.inference_mode():
            for token in steps:
                log_probs, dec_state, alpha = self.model.step(y, dec_state, memory)
                top = log_probs[0].topk(DEFAULT_TOP_K)
                tops.append([Candidate(piece=self.target.pieces([i])[0], id=int(i), prob=float(p))
                             for i, p in zip(top.indices.tolist(), top.values.exp().tolist())])
                alphas.append(alpha[0].float().cpu().tolist())
                chosen = int(top.indices[0]) if token is None else token
                logps.append(float(log_probs[0, chosen]))
                y = torch.tensor([chosen], device=self.device)
                if token is None:
                    prefix = prefix + [chosen]
        return Trace(source=state.source, source_pieces=self.source.pieces(src_ids),
                     target_pieces=self.target.pieces(prefix), translation=self.target.decode(prefix),
                     attention=alphas, step_logprobs=logps, top_k=tops, logprob=float(sum(logps)),
                     method="step", notice=notice)

    def piece_ids(self, token: int | str) -> list[int]:
        """What the user typed -> target ids: an id, a piece ("▁Mann"), or any word, split into pieces."""
        if isinstance(token, int) or (isinstance(token, str) and token.strip().isdigit()):
            token_id = int(token)
            if not 0 <= token_id < self.target.vocab_size:
                raise ValueError(f"token id {token_id} is outside the vocabulary (0..{self.target.vocab_size - 1})")
            return [token_id]
        piece = str(token)
        if not piece.strip():
            raise ValueError("type a word or piece to force")
        for candidate in (piece, "▁" + piece.lstrip("▁")):
            token_id = self.target.sp.piece_to_id(candidate)
            if token_id != self.config.unk_id or candidate == "<unk>":
                return [token_id]
        return self.target.encode(piece.replace("▁", " "))

    def piece_id(self, token: int | str) -> int:
        """Exactly one target id for what the user typed; a clear error if it is not a single piece."""
        ids = self.piece_ids(token)
        if len(ids) != 1:
            raise ValueError(f"{token!r} is not a piece of the target vocabulary (it splits into "
                             f"{' '.join(self.target.pieces(ids))})")
        return ids[0]
