"""Text in, Trace out: the one façade the CLI, the app and the benchmarks call."""
from __future__ import annotations

import copy
import logging
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import torch

from . import rerank, search
from .checkpoint import load_checkpoint
from .model import DecoderState, Memory, Seq2Seq
from .sentences import split_sentences
from .tokenizer import SPECIAL_PIECES, WORD_START, Tokenizer
from .trace import BeamNode, Candidate, Hypothesis, Trace

log = logging.getLogger("s2s")
CANDIDATES = 5  # the most likely pieces recorded at every step (Trace.top_k, the Step tab's choices)
MAX_FORCED_CHARS = 200  # a typed word to force


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but CUDA is not available on this machine")
    return torch.device(device)


def quantize_int8(model: Seq2Seq) -> Seq2Seq:
    """A copy of the model with int8 weights in every nn.Linear (torch's dynamic quantization), for CPU serving.

    A decoder step reads ~12 MB of fp32 weights, half of them the vocabulary projection W_s (weights stored in
    int8 are read 4x faster). The LSTMs stay fp32: `step` runs the decoder LSTM as torch.lstm_cell on its
    weights, which a quantized LSTM module does not expose. The encoder reads the tied embedding in fp32.
    Measured against fp32 in bench/README.md (speed and BLEU); off unless asked for (`--quantize`).
    """
    import warnings

    from torch.ao.quantization import quantize_dynamic

    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 quantization is for CPU serving; this model is on " + str(next(model.parameters()).device))
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao, still in torch
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8)


@dataclass
class DecodeOptions:
    """How to decode. RANGES is the one definition of every valid value: `validate` enforces it, the app's
    sliders are built from it."""

    method: str = "greedy"  # greedy | beam | sample
    beam_size: int = 5
    length_penalty: float | None = None  # beam: GNMT exponent; None: the model's own (config.length_penalty)
    coverage_penalty: float | None = None  # beam: GNMT β; None: the model's own (config.coverage_penalty)
    nbest: int = 1  # beam: hypotheses returned
    reverse_weight: float | None = None  # beam: λ of the reverse model's score (s2s.rerank); None: the model's own
    temperature: float = 1.0  # sample
    top_k: int = 0  # sample from the k most likely pieces only (0: all)
    top_p: float = 1.0  # sample from the smallest set of pieces holding this much probability
    seed: int | None = None  # sample: None draws a fresh seed
    max_ratio: float = 2.0  # longest target relative to the source

    METHODS: ClassVar[tuple[str, ...]] = ("greedy", "beam", "sample")
    RANGES: ClassVar[dict[str, tuple[float, float]]] = dict(
        beam_size=(1, 64), nbest=(1, 64), length_penalty=(0.0, 5.0), coverage_penalty=(0.0, 5.0),
        reverse_weight=(0.0, 5.0),
        temperature=(0.05, 10.0), top_k=(0, 1000),
        top_p=(0.05, 1.0), seed=(0, 2**31 - 1))
    LABELS: ClassVar[dict[str, str]] = dict(
        beam_size="beam width", nbest="n-best", length_penalty="length penalty",
        coverage_penalty="coverage penalty", reverse_weight="back-translation weight", temperature="temperature",
        top_k="top-k", top_p="top-p", seed="seed")

    def validate(self) -> None:
        """ValueError naming the first value out of its range."""
        if self.method not in self.METHODS:
            raise ValueError(f"decoding method must be greedy, beam or sample, not {self.method!r}")
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if (value is None and name in ("length_penalty", "coverage_penalty", "reverse_weight", "seed")
                    or name == "nbest" and self.method != "beam"):
                continue
            if not low <= value <= high:
                raise ValueError(f"{self.LABELS[name]} must be between {low:g} and {high:g}, not {value:g}")
        if self.method == "beam" and self.nbest > self.beam_size:
            raise ValueError(f"n-best must be between 1 and the beam width ({self.beam_size}), not {self.nbest}")


@dataclass
class StepperState:
    """Step-by-step decoding as plain data: copy it per user, nothing points into the model."""

    source: str
    target_ids: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)  # which steps the user chose by hand
    done: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StepPath:
    """The decoder's way through one sentence, kept between Step-tab clicks so that the next click resumes
    from it instead of replaying the encoder and every step. Never changed once made (a session may read it
    from two events at once); it holds tensors, so it stays on the server (a session's state), never in JSON.
    """

    model: weakref.ref  # the model that made it: a path is only ever used with that very model
    source: str
    src_ids: list[int]
    notice: str
    memory: Memory  # the encoder's output, computed once per sentence
    states: tuple[DecoderState, ...]  # states[t]: the decoder state that chooses piece t + 1
    decoded: search.Decoded  # the rows (α, candidates, log-probs) of every piece in `ids`
    greedy_from: int  # ids[greedy_from:] are the model's own greedy choices; before that, the prefix it was given


@dataclass
class Continuation:
    """One greedy decode that keeps a stepper's prefix. Rows 0..n-1 of `trace` are the prefix; row n, if
    there is one, holds the model's candidates for the next piece; the rest is what it would write from there."""

    trace: Trace
    ids: list[int]  # target ids of trace.target_pieces
    path: StepPath | None = None  # the decoder states behind it; `stepper_decode(..., kept=)` resumes from them


class Translator:
    def __init__(self, model: Seq2Seq, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                 name: str = "model", device: str | torch.device = "cpu", reverse: "Translator | None" = None
                 ) -> None:
        """reverse: the model that translates back, which reranks the beam's n-best (s2s.rerank)."""
        self.device = pick_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        self.source_tokenizer, self.target_tokenizer, self.name = source_tokenizer, target_tokenizer, name
        self.config = model.config
        self.reverse = reverse

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", name: str | None = None,
             quantize: bool = False, reverse: bool = True) -> "Translator":
        """quantize: int8 Linear weights for CPU serving (`quantize_int8`). reverse: also load the model that
        translates back (config.reverse_model, a sibling folder) when there is one, for reranking."""
        target_device = pick_device(device)
        model, source_tokenizer, target_tokenizer = load_checkpoint(path, target_device)
        if quantize:
            model = quantize_int8(model)
        back = _load_reverse(Path(path), model.config, device, quantize) if reverse else None
        return cls(model, source_tokenizer, target_tokenizer, name or Path(path).name, target_device, back)

    def reverse_weight(self, options: DecodeOptions) -> float:
        """The λ that reranks this decode: 0 unless beam search with a reverse model at hand."""
        return self._asked_reverse_weight(options) if options.method == "beam" and self.reverse is not None else 0.0

    def reverse_notice(self, options: DecodeOptions) -> str:
        """Why a decode that should be reranked is not ("" when it is, or should not be)."""
        if options.method != "beam" or not self._asked_reverse_weight(options) or self.reverse is not None:
            return ""
        wanted = self.config.reverse_model or "a model that translates back"
        return f"Not reranked: the reverse model ({wanted}) is not loaded beside this one."

    def _asked_reverse_weight(self, options: DecodeOptions) -> float:
        return self.config.reverse_weight if options.reverse_weight is None else options.reverse_weight

    # ------------------------------------------------------------------ encoding
    def encode_source(self, text: str) -> tuple[list[int], str]:
        """Source ids ending with </s>, truncated to config.max_src_tokens (with a notice)."""
        ids = self.source_tokenizer.encode(text)
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
                candidates: int = CANDIDATES, sources: Sequence[str] | None = None) -> list[search.BeamResult]:
        """sources: the texts behind id_lists, which the reverse model reads when it reranks a beam."""
        memory, state, lengths = self._encode_batch(id_lists)
        max_len = search.max_target_length(lengths, ratio=options.max_ratio)
        if options.method == "beam" and not prefixes:
            penalty = self.config.length_penalty if options.length_penalty is None else options.length_penalty
            beta = self.config.coverage_penalty if options.coverage_penalty is None else options.coverage_penalty
            weight = self.reverse_weight(options) if sources is not None else 0.0
            kept = options.beam_size if weight else options.nbest  # the reranker sees every finished hypothesis
            results = search.beam_search(self.model, memory, state, max_len, beam_size=int(options.beam_size),
                                         length_penalty=penalty, nbest=int(kept), candidates=candidates,
                                         record_tree=record_tree, coverage_penalty=beta)
            return self._reranked(results, sources, weight, int(options.nbest)) if weight else results
        chooser = search.argmax_chooser
        if options.method == "sample":
            chooser = search.sampling_chooser(options.temperature, int(options.top_k), options.top_p, options.seed)
        return [search.BeamResult([d]) for d in
                search.decode(self.model, memory, state, max_len, chooser, prefixes=prefixes, candidates=candidates)]

    def _reranked(self, results: list[search.BeamResult], sources: Sequence[str], weight: float, nbest: int
                  ) -> list[search.BeamResult]:
        """Each beam's finished hypotheses reordered by the reverse model (s2s.rerank), cut to nbest."""
        texts = [[self.target_tokenizer.decode(h.ids) for h in result.nbest] for result in results]
        back = iter(rerank.back_logprobs(self.reverse, [s for s, ts in zip(sources, texts) for _ in ts],
                                         [t for ts in texts for t in ts]))
        return [search.BeamResult(rerank.rerank(result.nbest, [next(back) for _ in result.nbest], weight)[:nbest],
                                  result.tree) for result in results]

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
                              record_tree=record_tree, sources=[text])[0]
        notice = " ".join(n for n in (notice, "" if prefix else self.reverse_notice(options)) if n)
        return self._trace(text, src_ids, result, options.method, notice)

    def translate_batch(self, texts: list[str], options: DecodeOptions | None = None,
                        batch_size: int = 64, by_sentence: bool = False) -> list[str]:
        """Many sentences, fast: length-sorted batches, results in the original order.

        by_sentence: each text is split into sentences (`split_sentences`), which are translated on their own
        and joined with a space, as the app translates a paragraph.
        """
        options = options or DecodeOptions()
        options.validate()
        if by_sentence:
            parts = [split_sentences(text) or [text] for text in texts]
            flat = iter(self.translate_batch([p for ps in parts for p in ps], options, batch_size))
            return [" ".join(next(flat) for _ in ps) for ps in parts]
        encoded = [self.encode_source(t)[0] if t and t.strip() else None for t in texts]
        order = sorted((i for i, e in enumerate(encoded) if e is not None), key=lambda i: len(encoded[i]))
        out = [""] * len(texts)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            results = self._decode([encoded[i] for i in chunk], options, candidates=0,
                                   sources=[texts[i] for i in chunk])
            for i, result in zip(chunk, results):
                out[i] = self.target_tokenizer.decode(result.nbest[0].ids)
        return out

    def _trace(self, text: str, src_ids: list[int], result: search.BeamResult, method: str, notice: str) -> Trace:
        best = result.nbest[0]
        pieces, decode = self.target_tokenizer.pieces, self.target_tokenizer.decode
        top = [[Candidate(piece=p, id=int(i), prob=float(pr)) for p, i, pr in zip(pieces(ids), ids, probs)]
               for ids, probs in zip(best.top_ids.tolist(), best.top_probs.tolist())]
        nbest = [Hypothesis(text=decode(h.ids), pieces=pieces(h.ids), score=float(h.score), logprob=h.logprob,
                            back_logprob=h.back_logprob) for h in result.nbest]
        tree = [BeamNode(**{**node, "piece": pieces([node["id"]])[0]}) for node in result.tree]
        return Trace(source=text, source_pieces=self.source_tokenizer.pieces(src_ids), target_pieces=pieces(best.ids),
                     translation=decode(best.ids), attention=best.alpha.tolist(),
                     step_logprobs=[float(x) for x in best.step_logprobs], top_k=top, logprob=best.logprob,
                     method=method, nbest=nbest, beam_tree=tree, notice=notice, source_lang=self.config.src_lang,
                     target_lang=self.config.tgt_lang)

    # ------------------------------------------------------------------ step by step
    # Every step-by-step action needs one decode: the greedy continuation of the prefix chosen so far.
    # Pass it on (`continuation=`) when it is already at hand.
    def stepper_start(self, text: str) -> StepperState:
        return StepperState(source=text, done=not text.strip())

    @torch.inference_mode()
    def stepper_decode(self, stepper: StepperState, kept: Continuation | None = None) -> Continuation:
        """Greedy decoding that keeps the prefix: `search.decode` with a forced prefix.

        `kept`: the continuation of an earlier click on the same sentence. It is reused as it is when it
        already continues this prefix greedily (Next, Run: no step at all); otherwise decoding resumes from its
        state at the first piece where the prefixes differ (Force, Back: no encoder, no replay of the pieces
        before). Without it (or for another sentence or model), the sentence is encoded and decoded from <s>.
        """
        prefix, path = list(stepper.target_ids), kept.path if kept else None
        if self._shared_pieces(stepper, kept) < 0:
            src_ids, notice = self.encode_source(stepper.source)
            memory, state, _ = self._encode_batch([src_ids])
            empty = search.Decoded(ids=[], alpha=np.zeros((0, len(src_ids)), np.float32), step_logprobs=[],
                                   top_ids=np.zeros((0, CANDIDATES), np.int64),
                                   top_probs=np.zeros((0, CANDIDATES), np.float32))
            path = StepPath(weakref.ref(self.model), stepper.source, src_ids, notice, memory, (state,), empty, 0)
        same = self._shared_pieces(stepper, kept) if kept is not None and kept.path is path else 0
        if same > len(prefix):
            return kept
        same = min(same, len(path.states) - 1)  # resume where a kept state exists
        return self._resume(path, same, prefix[same:])

    def stepper_reuse(self, stepper: StepperState, kept: Sequence[Continuation]) -> Continuation | None:
        """Of earlier continuations, the one to pass to `stepper_decode` as `kept`: one that continues this
        prefix as it is, else the one sharing the longest prefix with it; None when none is of this sentence
        and model. (Keeping two lets Back after a Force return to the continuation before it for free.)"""
        best = max(kept, key=lambda c: self._shared_pieces(stepper, c), default=None)
        return best if best is not None and self._shared_pieces(stepper, best) >= 0 else None

    def _shared_pieces(self, stepper: StepperState, kept: Continuation | None) -> int:
        """How many leading pieces of the stepper's prefix `kept` decoded; len(prefix) + 1 when it continues the
        whole prefix greedily (usable as it is); -1 when it is of another sentence or model."""
        path = kept.path if kept else None
        if path is None or path.model() is not self.model or path.source != stepper.source:
            return -1
        ids, prefix = path.decoded.ids, stepper.target_ids
        same = next((t for t, (a, b) in enumerate(zip(ids, prefix)) if a != b), min(len(ids), len(prefix)))
        return same + 1 if same == len(prefix) and path.greedy_from <= len(prefix) else same

    def _resume(self, path: StepPath, steps: int, forced: list[int]) -> Continuation:
        """Greedy decoding from the kept state after `steps` pieces of `path`, forcing `forced` first."""
        max_len = search.max_target_length(torch.tensor([len(path.src_ids)]))
        last = path.decoded.ids[steps - 1] if steps else self.config.bos_id
        states: list[DecoderState] = []
        new = search.decode(self.model, path.memory, path.states[steps], max_len, prefixes=[forced] if forced else None,
                            candidates=CANDIDATES, resume=search.Resume(steps, last), states=states)[0]
        old = path.decoded
        decoded = search.Decoded(
            ids=old.ids[:steps] + new.ids, alpha=np.concatenate([old.alpha[:steps], new.alpha]),
            step_logprobs=old.step_logprobs[:steps] + new.step_logprobs,
            top_ids=np.concatenate([old.top_ids[:steps], new.top_ids]),
            top_probs=np.concatenate([old.top_probs[:steps], new.top_probs]), finished=new.finished)
        decoded.score = decoded.logprob
        path = StepPath(path.model, path.source, path.src_ids, path.notice, path.memory,
                        path.states[:steps] + tuple(states), decoded, steps + len(forced))
        trace = self._trace(path.source, path.src_ids, search.BeamResult([decoded]), "greedy", path.notice)
        return Continuation(trace, decoded.ids, path)

    def stepper_advance(self, stepper: StepperState, forced: Sequence[int] | None = None,
                        continuation: Continuation | None = None) -> StepperState:
        """One more step: the model's greedy piece, or the pieces the user forces (appended one by one
        until the translation ends)."""
        stepper = copy.deepcopy(stepper)
        if forced is None and not stepper.done:
            ids = (continuation or self.stepper_decode(stepper)).ids
            forced_steps = [(ids[len(stepper.target_ids)] if len(ids) > len(stepper.target_ids)
                             else self.config.eos_id, False)]
        else:
            forced_steps = [(int(i), True) for i in forced or []]
        limit = self._target_limit(stepper.source)
        for token, by_hand in forced_steps:
            if stepper.done:
                break
            stepper.target_ids.append(token)
            stepper.forced.append(by_hand)
            stepper.done = token == self.config.eos_id or len(stepper.target_ids) >= limit
        return stepper

    def stepper_back(self, stepper: StepperState) -> StepperState:
        stepper = copy.deepcopy(stepper)
        if stepper.target_ids:
            stepper.target_ids.pop()
            stepper.forced.pop()
        stepper.done = False
        return stepper

    def stepper_run(self, stepper: StepperState, continuation: Continuation | None = None) -> StepperState:
        """Greedy to the end from the current prefix (keeping what the user forced)."""
        stepper = copy.deepcopy(stepper)
        if stepper.done:
            return stepper
        ids = (continuation or self.stepper_decode(stepper)).ids
        stepper.forced += [False] * (len(ids) - len(stepper.target_ids))
        stepper.target_ids, stepper.done = list(ids), True
        return stepper

    def stepper_trace(self, stepper: StepperState, extra_step: bool = False,
                      continuation: Continuation | None = None) -> Trace:
        """The Trace of the prefix so far; extra_step adds the model's next prediction (for its top-k and α)."""
        if not stepper.source.strip():
            return self.translate("")
        continuation = continuation or self.stepper_decode(stepper)
        full = continuation.trace
        n = min(len(stepper.target_ids) + (extra_step and not stepper.done), len(continuation.ids))
        ids = continuation.ids[:n]
        return Trace(source=full.source, source_pieces=full.source_pieces,
                     target_pieces=self.target_tokenizer.pieces(ids), translation=self.target_tokenizer.decode(ids),
                     attention=full.attention[:n], step_logprobs=full.step_logprobs[:n], top_k=full.top_k[:n],
                     logprob=float(sum(full.step_logprobs[:n])), method="step", notice=full.notice,
                     source_lang=full.source_lang, target_lang=full.target_lang)

    def _target_limit(self, text: str) -> int:
        src_len = len(self.encode_source(text)[0])
        return int(search.max_target_length(torch.tensor([src_len]))[0])

    def piece_ids(self, token: int | str, exact: bool = False) -> list[int]:
        """What a person forces -> target ids; ValueError with a message meant for them.

        An int is an id. exact=True (a clicked candidate): the text must be one vocabulary piece. Otherwise
        (typed): the text itself if it starts with ▁ or is a special piece such as </s>; else the word-initial
        piece "▁text", then the piece "text"; else the pieces the target tokenizer splits the text into.
        """
        vocab = self.target_tokenizer.vocab_size
        if isinstance(token, int):
            if not 0 <= token < vocab:
                raise ValueError(f"Token id {token} is outside the vocabulary (0..{vocab - 1}).")
            return [token]
        text = token if exact else (token or "").strip()
        if not text:
            raise ValueError("Type a piece or a word to force (e.g. a word of the target language, or </s> to stop).")
        if len(text) > MAX_FORCED_CHARS:
            raise ValueError("That is too long to force; type one word or piece.")
        if text in (SPECIAL_PIECES[self.config.bos_id], SPECIAL_PIECES[self.config.pad_id]):
            raise ValueError(f"{text} cannot be forced: it never appears inside a translation.")
        tries = [text] if exact or text.startswith(WORD_START) or text in SPECIAL_PIECES.values() \
            else [WORD_START + text, text]
        for piece in tries:
            piece_id = self.target_tokenizer.sp.piece_to_id(piece)
            if piece_id != self.config.unk_id or piece == SPECIAL_PIECES[self.config.unk_id]:
                return [piece_id]
        if exact:
            raise ValueError(f"{text!r} is not a piece of this model's target vocabulary.")
        ids = self.target_tokenizer.encode(text)
        if not ids:
            raise ValueError(f"{text!r} gives no target pieces.")
        return ids


def _load_reverse(path: Path, config, device: str, quantize: bool) -> "Translator | None":
    """The model that translates back, from the sibling folder config.reverse_model, when it is there and
    reads the other way (None otherwise: the model then decodes without reranking, and says so)."""
    if not config.reverse_model:
        return None
    folder = path.parent / config.reverse_model
    if not (folder / "config.json").is_file():
        log.info("%s: reverse model %s not found beside it; beam search is not reranked", path.name, folder)
        return None
    try:
        reverse = Translator.load(folder, device=device, quantize=quantize, reverse=False)
    except Exception as err:  # a broken reverse model must not keep the model itself from loading
        log.warning("%s: reverse model %s cannot be loaded (%s); beam search is not reranked", path.name, folder, err)
        return None
    c = reverse.config
    if (c.src_lang, c.tgt_lang) != (config.tgt_lang, config.src_lang):
        log.warning("%s: %s translates %s→%s, not %s→%s; beam search is not reranked", path.name, folder.name,
                    c.src_lang, c.tgt_lang, config.tgt_lang, config.src_lang)
        return None
    return reverse
