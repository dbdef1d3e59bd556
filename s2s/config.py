"""One dataclass for the architecture, saved as ``config.json`` in every checkpoint."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

CONFIG_VERSION = 1
RNN_TYPES = ("lstm", "gru")
ATTENTION_TYPES = ("general", "dot", "additive")


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
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3
    src_lang: str = "en"
    tgt_lang: str = "de"
    max_src_tokens: int = 256  # longer inputs are truncated (with a notice) before encoding
    length_penalty: float = 1.0  # beam search's default α for this model, tuned on validation data
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.attentional_size is None:
            self.attentional_size = self.hidden_size
        self.validate()

    @property
    def memory_size(self) -> int:
        return self.encoder_hidden_size * (2 if self.bidirectional else 1)

    def validate(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ConfigError(f"config version {self.version} is not supported (this s2s reads version {CONFIG_VERSION})")
        if self.rnn not in RNN_TYPES:
            raise ConfigError(f"rnn must be one of {RNN_TYPES}, got {self.rnn!r}")
        if self.attention not in ATTENTION_TYPES:
            raise ConfigError(f"attention must be one of {ATTENTION_TYPES}, got {self.attention!r}")
        for name in ("src_vocab_size", "tgt_vocab_size", "emb_size", "encoder_hidden_size",
                     "hidden_size", "attentional_size", "num_layers", "max_src_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.length_penalty <= 5.0:
            raise ConfigError(f"length_penalty must be in [0, 5], got {self.length_penalty}")
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
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"config.json is not valid JSON: {err}") from None
        return cls.from_dict(data)
