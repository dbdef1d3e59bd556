"""One dataclass for the architecture, saved as ``config.json`` in every checkpoint."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

CONFIG_VERSION = 1
RNN_TYPES = ("lstm", "gru")
ATTENTION_TYPES = ("general", "dot", "additive")
# Upper bounds, so that a config.json from anywhere cannot make the loader allocate gigabytes. Far above any
# model this project trains (vocabularies 6-8k, sizes 256-512, one layer); the total parameter count is
# bounded separately when a checkpoint is loaded (s2s.checkpoint.MAX_PARAMETERS).
MAX_VOCAB_SIZE = 65_536
MAX_SIZE = 4096  # emb_size, encoder_hidden_size, hidden_size, attentional_size
MAX_LAYERS = 8
MAX_SRC_TOKENS = 1024  # pieces per input sentence; longer inputs are truncated with a notice
MAX_CONFIG_BYTES = 64 * 1024  # a config.json is about 700 bytes
# Decoding settings chosen after training (bench/tune_decoding.py), not part of the architecture: a run
# continued from a checkpoint keeps them, and models that differ only in them have the same architecture.
DECODING_FIELDS = ("length_penalty", "coverage_penalty", "reverse_model", "reverse_weight")
LIMITS = dict(src_vocab_size=MAX_VOCAB_SIZE, tgt_vocab_size=MAX_VOCAB_SIZE, emb_size=MAX_SIZE,
              encoder_hidden_size=MAX_SIZE, hidden_size=MAX_SIZE, attentional_size=MAX_SIZE, num_layers=MAX_LAYERS,
              max_src_tokens=MAX_SRC_TOKENS)


class ConfigError(ValueError):
    """A config that cannot describe a working model."""


@dataclass
class Config:
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    rnn: str = "lstm"
    emb_size: int = 256
    encoder_hidden_size: int = 256  # per direction; memory h̄ has 2x this when bidirectional
    hidden_size: int = 256  # decoder state hₜ
    attentional_size: int | None = None  # size of h̃ₜ; None means hidden_size
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.2
    attention: str = "general"
    input_feeding: bool = False
    tie_embeddings: bool = True  # target embedding = output projection (needs emb == attentional size)
    pad_id: int = PAD_ID  # the special ids are the tokenizer's
    unk_id: int = UNK_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    src_lang: str = "en"
    tgt_lang: str = "de"
    max_src_tokens: int = 256  # longer inputs are truncated (with a notice) before encoding
    length_penalty: float = 1.0  # beam search's default α for this model, tuned on validation data
    coverage_penalty: float = 0.0  # beam search's default GNMT coverage β for this model, tuned on validation
    # Reranking the beam's n-best by the model that translates back (s2s.rerank): that model's checkpoint
    # folder, a sibling of this one (e.g. "de-en" beside "en-de"), and its weight λ, tuned on validation.
    reverse_model: str = ""
    reverse_weight: float = 0.0
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.attentional_size is None:
            self.attentional_size = self.hidden_size
        self.validate()

    @property
    def memory_size(self) -> int:
        return self.encoder_hidden_size * (2 if self.bidirectional else 1)

    def validate(self) -> None:
        self._check_types()
        if self.version != CONFIG_VERSION:
            raise ConfigError(f"config version {self.version} is not supported (this s2s reads version {CONFIG_VERSION})")
        if self.rnn not in RNN_TYPES:
            raise ConfigError(f"rnn must be one of {RNN_TYPES}, got {_short(self.rnn)}")
        if self.attention not in ATTENTION_TYPES:
            raise ConfigError(f"attention must be one of {ATTENTION_TYPES}, got {_short(self.attention)}")
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
            if value > limit:
                raise ConfigError(f"{name} must be at most {limit}, got {value!r}")
        if not 0.0 <= self.length_penalty <= 5.0:
            raise ConfigError(f"length_penalty must be in [0, 5], got {self.length_penalty}")
        if not 0.0 <= self.coverage_penalty <= 5.0:
            raise ConfigError(f"coverage_penalty must be in [0, 5], got {self.coverage_penalty}")
        if not 0.0 <= self.reverse_weight <= 5.0:
            raise ConfigError(f"reverse_weight must be in [0, 5], got {self.reverse_weight}")
        if self.reverse_model and not _is_folder_name(self.reverse_model):
            raise ConfigError(f"reverse_model must be the name of a sibling checkpoint folder, got "
                              f"{_short(self.reverse_model)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attention == "dot" and self.memory_size != self.hidden_size:
            raise ConfigError(
                f"dot attention needs encoder memory size ({self.memory_size}) == decoder hidden size "
                f"({self.hidden_size}); use 'general' or change the sizes")
        if self.tie_embeddings and self.emb_size != self.attentional_size:
            raise ConfigError(
                f"tie_embeddings needs emb_size ({self.emb_size}) == attentional_size ({self.attentional_size})")
        specials = {self.pad_id, self.unk_id, self.bos_id, self.eos_id}
        if len(specials) != 4:
            raise ConfigError("pad, unk, bos and eos ids must be distinct")
        if not all(0 <= i < min(self.src_vocab_size, self.tgt_vocab_size) for i in specials):
            raise ConfigError("pad, unk, bos and eos ids must lie inside both vocabularies")

    def _check_types(self) -> None:
        """Each field holds the JSON type of its annotation (an int is a number; a bool is never an int)."""
        for f in fields(self):
            value, kind = getattr(self, f.name), _TYPES[f.type.split(" |")[0]]
            if kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            if not ok:
                expected = "a positive integer" if f.name in LIMITS else _EXPECTED[kind]
                raise ConfigError(f"{f.name} must be {expected}, got {_short(value)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        if not isinstance(data, dict):
            raise ConfigError("config.json must hold a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"config.json has unknown fields: {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ConfigError(f"config.json is not a valid s2s config: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        path = Path(path)
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config.json is larger than {MAX_CONFIG_BYTES // 1024} KB; an s2s config is under 1 KB")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, a 5000-digit number, [[[[...]]]]
            raise ConfigError(f"config.json is not valid JSON: {str(err)[:200]}") from None
        return cls.from_dict(data)


def _is_folder_name(name: str) -> bool:
    """A plain folder name: no path separators, no "..", nothing hidden (config.json may come from anywhere)."""
    return (0 < len(name) <= 100 and not name.startswith(".") and "/" not in name and "\\" not in name
            and name.isprintable())


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_EXPECTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _short(value, limit: int = 100) -> str:
    """repr of a value read from a file, cut to `limit` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
