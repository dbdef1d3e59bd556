"""One training loop for full training and fine-tuning.

Length-bucketed token batches, Adam, gradient clipping, label smoothing,
learning-rate decay on a validation plateau, early stopping and best-checkpoint
selection on validation BLEU, fixed seeds, resumable, cancellable between
batches, progress through a callback.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import threading
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import sacrebleu
import torch
from safetensors.torch import load_file, save_file

from . import data as data_mod
from .api import DecodeOptions, Translator
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config
from .model import Seq2Seq
from .tokenizer import Tokenizer

RESUME_SUFFIX = ".resume"


@dataclass
class Recipe:
    """Everything needed to reproduce a model from raw data. Read from configs/<name>.toml."""

    name: str = "model"
    corpus: str = "multi30k"  # multi30k | tatoeba | pairs | mixed (tatoeba + multi30k)
    data_path: str = "../shared/data/multi30k"  # a folder (multi30k, mixed) or a file (tatoeba, pairs)
    tatoeba_path: str = ""  # mixed: the Tatoeba TSV
    multi30k_weight: int = 1  # mixed: how many times Multi30k train is repeated per epoch
    src_lang: str = "en"
    tgt_lang: str = "de"
    split_seed: int = 1234  # tatoeba/pairs: split by source sentence
    n_val: int = 1000
    n_test: int = 2000
    max_words: int = 80
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    model: dict = field(default_factory=dict)  # Config fields
    batch_tokens: int = 2000
    lr: float = 1e-3
    clip: float = 1.0
    label_smoothing: float = 0.1
    max_epochs: int = 30
    max_minutes: float = 0.0  # 0 = no time limit
    max_steps: int = 0  # 0 = no step limit
    eval_every: int = 0  # steps; 0 = once per epoch
    val_size: int = 0  # 0 = whole validation set for BLEU
    patience: int = 6  # evaluations without a better BLEU before stopping
    lr_decay: float = 0.5
    lr_patience: int = 1  # evaluations without improvement before decaying
    min_lr: float = 1e-5
    seed: int = 1
    threads: int = 0  # 0 = all cores
    half: bool = True  # store fp16 weights in the checkpoint
    output: str = "checkpoints/model"
    description: str = ""

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        with open(path, "rb") as f:
            raw = tomllib.load(f)
        flat: dict = {}
        for key, value in raw.items():
            if key == "model" or not isinstance(value, dict):
                flat[key] = value
            else:
                flat.update(value)  # [data], [train] sections are for reading only
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ValueError(f"{path}: unknown recipe keys {', '.join(unknown)}")
        return cls(**flat)


@dataclass
class Progress:
    kind: str  # "step" | "eval" | "done"
    step: int
    epoch: int
    loss: float = math.nan
    tokens_per_s: float = math.nan
    lr: float = math.nan
    elapsed_s: float = 0.0
    val_loss: float = math.nan
    val_bleu: float = math.nan
    best_bleu: float = math.nan
    message: str = ""


ProgressCallback = Callable[[Progress], None]


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    batches_done_in_epoch: int = 0
    best_bleu: float = -1.0
    best_step: int = 0
    evals_since_best: int = 0
    evals_since_lr_change: int = 0
    elapsed_s: float = 0.0
    target_tokens: int = 0
    history: list = field(default_factory=list)  # eval records


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def set_threads(threads: int = 0) -> None:
    torch.set_num_threads(threads if threads > 0 else max(1, os.cpu_count() or 1))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode_pairs(pairs: Sequence[tuple[str, str]], source: Tokenizer, target: Tokenizer, max_src_tokens: int,
                 max_tgt_tokens: int = 400) -> list[tuple[list[int], list[int]]]:
    """Pairs -> (source ids + </s>, target ids); long ones truncated."""
    eos = 3
    return [(source.encode(s)[:max_src_tokens - 1] + [eos], target.encode(t)[:max_tgt_tokens])
            for s, t in pairs]


def reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """Per-hypothesis reference lists -> sacreBLEU's streams (None where a sentence has fewer references)."""
    width = max(len(r) for r in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def corpus_bleu(hypotheses: list[str], references: list[list[str]]) -> sacrebleu.metrics.bleu.BLEUScore:
    """references: per hypothesis a list of references (any number)."""
    return sacrebleu.corpus_bleu(hypotheses, reference_streams(references))


@torch.no_grad()
def validation_loss(model: Seq2Seq, batches: list[data_mod.Batch], device) -> float:
    model.eval()
    total, tokens = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        loss = model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out)
        total += float(loss) * batch.n_tokens
        tokens += batch.n_tokens
    return total / max(tokens, 1)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors = {f"{idx}.{key}": value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
               for idx, state in sd["state"].items() for key, value in state.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class Trainer:
    """Runs the loop; `cancel` (a threading.Event) stops it within one batch."""

    def __init__(self, model: Seq2Seq, source: Tokenizer, target: Tokenizer, recipe: Recipe,
                 train_examples: list, val_sources: list[str], val_refs: list[list[str]],
                 device: str | torch.device = "cpu", callback: ProgressCallback | None = None,
                 cancel: threading.Event | None = None, save_best: Callable[["Trainer"], None] | None = None,
                 resume_dir: Path | None = None) -> None:
        self.model, self.source, self.target, self.recipe = model.to(device), source, target, recipe
        self.train_examples, self.val_sources, self.val_refs = train_examples, val_sources, val_refs
        self.device = torch.device(device)
        self.callback = callback or (lambda p: None)
        self.cancel = cancel or threading.Event()
        self.save_best = save_best
        self.resume_dir = resume_dir
        self.optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        self.state = TrainState()
        val_examples = encode_pairs([(s, r[0]) for s, r in zip(val_sources, val_refs)], source, target,
                                    model.config.max_src_tokens)
        self.val_batches = list(data_mod.token_batches(val_examples, 4000, seed=0, shuffle=False))
        self.use_amp = self.device.type == "cuda"

    # ------------------------------------------------------------ persistence
    def save_resume(self) -> None:
        if self.resume_dir is None:
            return
        folder = self.resume_dir
        save_checkpoint(folder, self.model, self.source, self.target, training=asdict(self.state))
        tensors, meta = _optimizer_tensors(self.optimizer)
        tmp = folder / "optimizer.safetensors.tmp"
        save_file(tensors, str(tmp))
        os.replace(tmp, folder / "optimizer.safetensors")
        (folder / "optimizer.json").write_text(json.dumps(meta))

    def load_resume(self) -> bool:
        folder = self.resume_dir
        if folder is None or not (folder / "optimizer.safetensors").exists():
            return False
        model, _, _ = load_checkpoint(folder, self.device)
        self.model.load_state_dict(model.state_dict())
        _restore_optimizer(self.optimizer, load_file(str(folder / "optimizer.safetensors")),
                           json.loads((folder / "optimizer.json").read_text()))
        self.state = TrainState(**json.loads((folder / "training.json").read_text()))
        return True

    # ------------------------------------------------------------ evaluation
    def evaluate(self) -> tuple[float, float]:
        """(val BLEU with greedy decoding, val loss)."""
        self.model.eval()
        sources, refs = self.val_sources, self.val_refs
        if self.recipe.val_size and len(sources) > self.recipe.val_size:
            sources, refs = sources[:self.recipe.val_size], refs[:self.recipe.val_size]
        translator = Translator(self.model, self.source, self.target, device=self.device)
        hyps = translator.translate_batch(sources, DecodeOptions(), batch_size=128)
        bleu = corpus_bleu(hyps, refs).score if sources else math.nan
        loss = validation_loss(self.model, self.val_batches, self.device) if self.val_batches else math.nan
        return bleu, loss

    def _after_eval(self, bleu: float, val_loss: float, train_loss: float) -> bool:
        """Record, keep the best, decay lr on plateau; return True to stop early."""
        st, r = self.state, self.recipe
        lr = self.optimizer.param_groups[0]["lr"]
        st.history.append(dict(step=st.step, epoch=st.epoch, val_bleu=bleu, val_loss=val_loss,
                               train_loss=train_loss, lr=lr, elapsed_s=round(st.elapsed_s, 1)))
        score = bleu if not math.isnan(bleu) else -val_loss
        if score > st.best_bleu:
            st.best_bleu, st.best_step, st.evals_since_best, st.evals_since_lr_change = score, st.step, 0, 0
            if self.save_best:
                self.save_best(self)
        else:
            st.evals_since_best += 1
            st.evals_since_lr_change += 1
            if st.evals_since_lr_change >= r.lr_patience and lr > r.min_lr:
                for group in self.optimizer.param_groups:
                    group["lr"] = max(group["lr"] * r.lr_decay, r.min_lr)
                st.evals_since_lr_change = 0
        self.callback(Progress("eval", st.step, st.epoch, train_loss, lr=lr, elapsed_s=st.elapsed_s,
                               val_loss=val_loss, val_bleu=bleu, best_bleu=st.best_bleu))
        return r.patience > 0 and st.evals_since_best >= r.patience

    # ------------------------------------------------------------ the loop
    def run(self) -> TrainState:
        r, st = self.recipe, self.state
        started = time.perf_counter() - st.elapsed_s
        stop = False
        window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
        last_loss = math.nan
        while not stop and st.epoch < r.max_epochs:
            batches = list(data_mod.token_batches(self.train_examples, r.batch_tokens, seed=r.seed + st.epoch))
            for index, batch in enumerate(batches):
                if index < st.batches_done_in_epoch:
                    continue  # resuming inside an epoch: the same seeded order, skip what was done
                if self.cancel.is_set():
                    stop = True
                    break
                loss = self._train_step(batch)
                st.step += 1
                st.batches_done_in_epoch = index + 1
                st.target_tokens += batch.n_tokens
                window_loss += loss * batch.n_tokens
                window_tokens += batch.n_tokens
                st.elapsed_s = time.perf_counter() - started
                if st.step % 10 == 0 or index == len(batches) - 1:
                    now = time.perf_counter()
                    self.callback(Progress("step", st.step, st.epoch, window_loss / max(window_tokens, 1),
                                           window_tokens / max(now - window_start, 1e-9),
                                           self.optimizer.param_groups[0]["lr"], st.elapsed_s))
                    last_loss = window_loss / max(window_tokens, 1)
                    window_loss, window_tokens, window_start = 0.0, 0, now
                out_of_time = r.max_minutes and st.elapsed_s >= r.max_minutes * 60
                out_of_steps = r.max_steps and st.step >= r.max_steps
                if r.eval_every and st.step % r.eval_every == 0 and not (out_of_time or out_of_steps):
                    stop = self._evaluate_and_save(last_loss)
                if stop or out_of_time or out_of_steps:
                    stop = True
                    break
            else:
                st.epoch += 1
                st.batches_done_in_epoch = 0
                if not r.eval_every:
                    stop = self._evaluate_and_save(last_loss) or stop
        if not self.cancel.is_set() and (r.eval_every or st.batches_done_in_epoch):
            self._evaluate_and_save(last_loss if st.step else math.nan)
        elif self.cancel.is_set():
            self.save_resume()
        self.callback(Progress("done", st.step, st.epoch, elapsed_s=st.elapsed_s, best_bleu=st.best_bleu,
                               message="cancelled" if self.cancel.is_set() else "finished"))
        return st

    def _evaluate_and_save(self, train_loss: float) -> bool:
        bleu, val_loss = self.evaluate()
        stop = self._after_eval(bleu, val_loss, train_loss)
        self.save_resume()
        return stop

    def _train_step(self, batch: data_mod.Batch) -> float:
        self.model.train()
        batch = batch.to(self.device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.use_amp):
            loss = self.model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out,
                                   label_smoothing=self.recipe.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.clip)
        self.optimizer.step()
        return float(loss.detach())


# ---------------------------------------------------------------------- full training from a recipe
def load_splits(recipe: Recipe) -> tuple[dict[str, list[tuple[str, str]]], dict]:
    """train / val / test pairs for a recipe, cleaned; plus a report of what was dropped."""
    if recipe.corpus == "multi30k":
        splits = {name: data_mod.read_multi30k(recipe.data_path, name, recipe.src_lang, recipe.tgt_lang)
                  for name in ("train", "val")}
    elif recipe.corpus == "mixed":
        splits = data_mod.mixed_corpus(recipe.tatoeba_path, recipe.data_path, recipe.src_lang, recipe.tgt_lang,
                                       recipe.n_val, recipe.n_test, recipe.split_seed, recipe.multi30k_weight)
        splits.pop("test")
    elif recipe.corpus in ("tatoeba", "pairs"):
        if recipe.corpus == "tatoeba":
            pairs = data_mod.read_tatoeba(recipe.data_path, recipe.src_lang)
        else:
            pairs, _ = data_mod.read_user_pairs(recipe.data_path, max_words=recipe.max_words)
        splits = data_mod.split_by_source(pairs, recipe.n_val, recipe.n_test, recipe.split_seed)
        splits.pop("test")  # held out: only `s2s evaluate` reads it
    else:
        raise ValueError(f"unknown corpus {recipe.corpus!r} (multi30k, tatoeba, pairs, mixed)")
    report = {}
    for name in splits:
        splits[name], dropped = data_mod.clean_pairs(splits[name], recipe.max_words)
        report[name] = dropped.summary()
    return splits, report


def build_config(recipe: Recipe, source: Tokenizer, target: Tokenizer) -> Config:
    return Config(**{**recipe.model, "src_vocab_size": source.vocab_size, "tgt_vocab_size": target.vocab_size,
                     "src_lang": recipe.src_lang, "tgt_lang": recipe.tgt_lang})


def train_from_recipe(recipe: Recipe, callback: ProgressCallback | None = None,
                      cancel: threading.Event | None = None, resume: bool = False, device: str = "auto",
                      output: str | Path | None = None) -> Path:
    """Reproduce a model from raw data: tokenizers, model, loop; the best checkpoint goes to `output`."""
    from .api import pick_device
    from .card import write_training_card

    output = Path(output or recipe.output)
    resume_dir = output.with_name(output.name + RESUME_SUFFIX)
    set_threads(recipe.threads)
    seed_everything(recipe.seed)
    device = pick_device(device)
    splits, report = load_splits(recipe)
    if resume and (resume_dir / "source.model").exists():
        source = Tokenizer.load(resume_dir / "source.model")
        target = Tokenizer.load(resume_dir / "target.model")
    else:
        source = Tokenizer.train([s for s, _ in splits["train"]], recipe.src_vocab_size)
        target = Tokenizer.train([t for _, t in splits["train"]], recipe.tgt_vocab_size)
    config = build_config(recipe, source, target)
    model = Seq2Seq(config)
    examples = encode_pairs(splits["train"], source, target, config.max_src_tokens)
    val_sources, val_refs = data_mod.group_references(splits["val"])
    hardware = (f"{cpu_name()} ({torch.get_num_threads()} threads)" if device.type == "cpu"
                else torch.cuda.get_device_name())

    def save_best(trainer: Trainer) -> None:
        training = dict(recipe=asdict(recipe), data_report=report, hardware=hardware,
                        train_pairs=len(splits["train"]), state=asdict(trainer.state),
                        parameters=sum(p.numel() for p in model.parameters()))
        save_checkpoint(output, trainer.model, source, target, training=training, half=recipe.half,
                        card=write_training_card(config, training))

    trainer = Trainer(model, source, target, recipe, examples, val_sources, val_refs, device, callback, cancel,
                      save_best, resume_dir)
    if resume and not trainer.load_resume():
        raise FileNotFoundError(f"nothing to resume in {resume_dir}")
    state = trainer.run()
    if not trainer.cancel.is_set():
        reason = ("the time limit" if recipe.max_minutes and state.elapsed_s >= recipe.max_minutes * 60 else
                  "the update limit" if recipe.max_steps and state.step >= recipe.max_steps else
                  "the epoch limit" if state.epoch >= recipe.max_epochs else "early stopping")
        record_final(output, dict(step=state.step, epoch=state.epoch, elapsed_s=round(state.elapsed_s, 1),
                                  stop_reason=reason, history=state.history))
    return output


def record_final(folder: str | Path, final: dict) -> None:
    """Add how the whole run ended to a checkpoint's training.json and model card (weights untouched)."""
    from .card import write_training_card
    from .checkpoint import CARD_FILE, TRAINING_FILE

    folder = Path(folder)
    path = folder / TRAINING_FILE
    if not path.exists():
        return
    training = json.loads(path.read_text(encoding="utf-8"))
    training["final"] = final
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    card = write_training_card(Config.load(folder / "config.json"), training, metrics)
    for name, text in ((TRAINING_FILE, json.dumps(training, indent=2) + "\n"), (CARD_FILE, card)):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)


# ---------------------------------------------------------------------- fine-tuning in the app
def fine_tune(base: Translator, train_pairs: Sequence[tuple[str, str]], heldout_pairs: Sequence[tuple[str, str]],
              epochs: int = 3, lr: float = 5e-4, batch_tokens: int = 1500, seed: int = 1,
              callback: ProgressCallback | None = None, cancel: threading.Event | None = None,
              max_minutes: float = 0.0) -> tuple[Translator, TrainState]:
    """Train a copy of base on the user's pairs; the base model is never modified.

    Every epoch reports held-out loss (and BLEU when there are held-out pairs). The returned model is the
    state after the last epoch.
    """
    seed_everything(seed)
    model = copy.deepcopy(base.model).to(base.device)
    recipe = Recipe(name="fine-tune", lr=lr, batch_tokens=batch_tokens, max_epochs=epochs, max_minutes=max_minutes,
                    patience=0, lr_patience=10**9, seed=seed, label_smoothing=0.1)
    examples = encode_pairs(train_pairs, base.source, base.target, model.config.max_src_tokens)
    val_sources, val_refs = data_mod.group_references(heldout_pairs)
    trainer = Trainer(model, base.source, base.target, recipe, examples, val_sources, val_refs, base.device,
                      callback, cancel)
    state = trainer.run()
    model.eval()
    return Translator(model, base.source, base.target, name=f"{base.name}-finetuned", device=base.device), state
