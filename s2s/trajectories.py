"""State trajectories (as in Seq2Seq-Vis, Strobelt et al. 2018): a sentence's encoder states h̄ᵢ and decoder
states hₜ projected into 2-D, drawn as paths.

The projection is PCA, fitted once per model on a fixed sample of validation sentences, never on the
sentence shown (its own PCA would make every sentence look alike) and never on test data:

- the sample: every 5th of the first 1,000 lines of Multi30k val (200 sentence pairs) in the model's two
  languages; decoder states come from teacher forcing on the reference. Where Multi30k is not on the
  machine (a Space), the model's example sentences (assets/examples.json), translated greedily.
- encoder and decoder states live in different spaces (h̄ has M numbers, hₜ has H), so each gets its own
  basis: mean and the two leading right singular vectors of the centred states (numpy SVD).
- cached: in memory per model, and in the checkpoint folder as `pca.safetensors` (written atomically; a
  read-only folder keeps only the memory copy). The file records a fingerprint of model.safetensors, so
  a basis is never used with weights other than its own.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors

from . import data as data_mod
from . import datasets
from .files import atomic_write
from .model import Seq2Seq

log = logging.getLogger("s2s.trajectories")
PCA_FILE = "pca.safetensors"
WEIGHTS_FILE = "model.safetensors"
SAMPLE_LINES, SAMPLE_EVERY = 1000, 5  # every 5th of the first 1,000 validation lines: 200 sentences
EXAMPLES_FILE = Path(__file__).resolve().parent.parent / "assets" / "examples.json"
BATCH = 50

_MEMORY: "weakref.WeakKeyDictionary[Seq2Seq, StateBases]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


@dataclass
class Basis:
    """x ↦ (x − mean) · componentsᵀ: 2-D coordinates of D-dimensional states."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (2, D), orthonormal rows
    explained: np.ndarray  # (2,) share of the sample's variance along each component

    def project(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float64) - self.mean) @ self.components.T  # (n, 2)


@dataclass
class StateBases:
    encoder: Basis
    decoder: Basis
    sample: str  # what the bases were fitted on, in words


def fit_basis(points: np.ndarray) -> Basis:
    """PCA to 2-D of (n, D) points by SVD of the centred matrix."""
    points = np.asarray(points, np.float64)
    mean = points.mean(0)
    _, singular, vt = np.linalg.svd(points - mean, full_matrices=False)
    variance = singular ** 2
    components = vt[:2]
    # the sign of a singular vector is arbitrary: fix it (largest entry positive) so a refit draws the same way
    components = components * np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])[:, None]
    if len(components) < 2:  # one point or one dimension: a flat second axis
        components = np.vstack([components, np.zeros((2 - len(components), points.shape[1]))])
        variance = np.concatenate([variance, np.zeros(2)])
    return Basis(mean, components, variance[:2] / max(variance.sum(), 1e-12))


@torch.inference_mode()
def states(model: Seq2Seq, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per (source ids, target ids) pair: encoder states h̄ (S, M) and decoder states hₜ (T, H), the target
    teacher-forced through `model.step` (hₜ is the top layer's state the readout of step t reads)."""
    device = next(model.parameters()).device
    cfg = model.config
    out = []
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start:start + BATCH]
        src_len = torch.tensor([len(s) for s, _ in chunk])
        tgt_len = [len(t) for _, t in chunk]
        src = torch.full((len(chunk), int(src_len.max())), cfg.pad_id, dtype=torch.long)
        tgt = torch.full((len(chunk), max(tgt_len)), cfg.pad_id, dtype=torch.long)
        for b, (s, t) in enumerate(chunk):
            src[b, :len(s)] = torch.tensor(list(s))
            tgt[b, :len(t)] = torch.tensor(list(t))
        memory, state = model.encode(src.to(device), src_len.to(device))
        y = torch.full((len(chunk),), cfg.bos_id, dtype=torch.long, device=device)
        hs = []
        for t in range(tgt.size(1)):
            _, state, _ = model.step(y, state, memory)
            hs.append(state.h[-1].float().cpu())  # (B, H)
            y = tgt[:, t].to(device)
        decoder = torch.stack(hs, 1).numpy()  # (B, T, H)
        encoder = memory.outputs.float().cpu().numpy()  # (B, S, M)
        out += [(encoder[b, :int(src_len[b])], decoder[b, :tgt_len[b]]) for b in range(len(chunk))]
    return out


def fit_state_bases(model: Seq2Seq, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], sample: str) -> StateBases:
    collected = states(model, pairs)
    return StateBases(fit_basis(np.concatenate([e for e, _ in collected])),
                      fit_basis(np.concatenate([d for _, d in collected])), sample)


def validation_sample(src_lang: str, tgt_lang: str) -> tuple[list[tuple[str, str | None]], str]:
    """The fixed sample the bases are fitted on: (source, reference or None) pairs, and its description."""
    try:
        pairs = data_mod.read_multi30k(datasets.locate("multi30k"), "val", src_lang, tgt_lang)
        return pairs[:SAMPLE_LINES:SAMPLE_EVERY], f"{len(pairs[:SAMPLE_LINES:SAMPLE_EVERY])} Multi30k val sentences"
    except (datasets.DataNotFound, data_mod.DataError, OSError):
        pass
    try:
        examples = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8")).get(f"{src_lang}-{tgt_lang}", [])
    except (OSError, ValueError):
        examples = []
    return [(sentence, None) for sentence in examples], f"{len(examples)} example sentences (assets/examples.json)"


def fingerprint(folder: Path | None) -> str:
    """sha256 of the folder's weights file ('' without one)."""
    path = folder / WEIGHTS_FILE if folder is not None else None
    if path is None or not path.is_file():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_bases(path: Path, bases: StateBases, weights: str) -> None:
    tensors = {f"{part}.{name}": torch.from_numpy(np.ascontiguousarray(getattr(getattr(bases, part), name),
                                                                       dtype=np.float32))
               for part in ("encoder", "decoder") for name in ("mean", "components", "explained")}
    atomic_write(path, save_tensors(tensors, metadata={"sample": bases.sample, "weights_sha256": weights}))


def load_bases(path: Path, weights: str) -> StateBases | None:
    """The bases cached in `path`, or None when there are none or they belong to other weights."""
    if not path.is_file() or not weights:
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if meta.get("weights_sha256") != weights:
                return None
            parts = {key: f.get_tensor(key).astype(np.float64) for key in f.keys()}
        return StateBases(*(Basis(parts[f"{p}.mean"], parts[f"{p}.components"], parts[f"{p}.explained"])
                            for p in ("encoder", "decoder")), meta.get("sample", ""))
    except Exception as err:  # a damaged cache file is refitted, never trusted
        log.warning("ignoring %s: %s", path, err)
        return None


def bases_for(model: Seq2Seq, encode_pair, folder: Path | None = None) -> StateBases:
    """The model's bases: from memory, else from folder/pca.safetensors, else fitted and cached in both.

    encode_pair(source, reference or None) -> (source ids, target ids) for one sentence of the sample.
    """
    with _LOCK:
        if model in _MEMORY:
            return _MEMORY[model]
        weights = fingerprint(folder)
        path = folder / PCA_FILE if folder is not None else None
        bases = load_bases(path, weights) if path is not None else None
        if bases is None:
            pairs, sample = validation_sample(model.config.src_lang, model.config.tgt_lang)
            if not pairs:
                raise ValueError(f"no sentences to fit the state projection on for {model.config.src_lang}"
                                 f"-{model.config.tgt_lang} (neither Multi30k val nor examples)")
            bases = fit_state_bases(model, [encode_pair(s, t) for s, t in pairs], sample)
            if path is not None and weights:
                try:
                    save_bases(path, bases, weights)
                except OSError as err:  # a read-only folder: the memory copy is enough
                    log.info("state projection not cached in %s: %s", folder, err)
        _MEMORY[model] = bases
        return bases
