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
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.optim.lr_scheduler import ReduceLROnPlateau

from . import data as data_mod
from .api import DecodeOptions, Translator, pick_device
from .card import model_card, refresh_card
from .checkpoint import load_checkpoint, save_checkpoint, write_checkpoint
from .evaluate import corpus_bleu
from .files import atomic_folder, recover_folder
from .model import Seq2Seq
from .recipe import Recipe, build_config, load_splits
from .tokenizer import EOS_ID, Tokenizer

RESUME_SUFFIX = ".resume"


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


def encode_pairs(pairs: Sequence[tuple[str, str]], source_tokenizer: Tokenizer, target_tokenizer: Tokenizer,
                 max_src_tokens: int, max_tgt_tokens: int = 400) -> list[tuple[list[int], list[int]]]:
    """Pairs -> (source ids + </s>, target ids); long ones truncated."""
    return [(source_tokenizer.encode(s)[:max_src_tokens - 1] + [EOS_ID], target_tokenizer.encode(t)[:max_tgt_tokens])
            for s, t in pairs]


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

    def __init__(self, model: Seq2Seq, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, recipe: Recipe,
                 train_examples: list, val_sources: list[str], val_refs: list[list[str]],
                 device: str | torch.device = "cpu", callback: ProgressCallback | None = None,
                 cancel: threading.Event | None = None, save_best: Callable[["Trainer"], None] | None = None,
                 resume_dir: Path | None = None) -> None:
        self.model, self.recipe = model.to(device), recipe
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.train_examples, self.val_sources, self.val_refs = train_examples, val_sources, val_refs
        self.device = torch.device(device)
        self.callback = callback or (lambda p: None)
        self.cancel = cancel or threading.Event()
        self.save_best = save_best
        self.resume_dir = resume_dir
        self.optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        # lr × lr_decay after lr_patience evaluations without a better score (BLEU, else -loss), down to min_lr
        self.plateau = ReduceLROnPlateau(self.optimizer, mode="max", factor=recipe.lr_decay,
                                         patience=max(recipe.lr_patience - 1, 0), threshold=0.0,
                                         threshold_mode="abs", min_lr=recipe.min_lr)
        self.state = TrainState()
        val_examples = encode_pairs([(s, r[0]) for s, r in zip(val_sources, val_refs)], source_tokenizer,
                                    target_tokenizer, model.config.max_src_tokens)
        self.val_batches = list(data_mod.token_batches(val_examples, 4000, seed=0, shuffle=False))
        self.use_amp = self.device.type == "cuda"

    # ------------------------------------------------------------ persistence
    def save_resume(self) -> None:
        """Weights, tokenizers, Adam and the plateau schedule, position in the epoch: all swapped in at once."""
        if self.resume_dir is None:
            return
        tensors, meta = _optimizer_tensors(self.optimizer)
        meta["plateau"] = self.plateau.state_dict()
        with atomic_folder(self.resume_dir) as tmp:
            write_checkpoint(tmp, self.model, self.source_tokenizer, self.target_tokenizer,
                             training=asdict(self.state))
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "optimizer.json").write_text(json.dumps(meta))

    def load_resume(self) -> bool:
        folder = self.resume_dir and recover_folder(self.resume_dir)
        if folder is None or not (folder / "optimizer.safetensors").exists():
            return False
        model, _, _ = load_checkpoint(folder, self.device)
        self.model.load_state_dict(model.state_dict())
        meta = json.loads((folder / "optimizer.json").read_text())
        _restore_optimizer(self.optimizer, load_file(str(folder / "optimizer.safetensors")), meta)
        self.state = TrainState(**json.loads((folder / "training.json").read_text()))
        if "plateau" in meta:
            self.plateau.load_state_dict(meta["plateau"])
        else:  # saved before the schedule was stored: rebuild it from the counters in training.json
            self.plateau.best = self.state.best_bleu if self.state.history else self.plateau.best
            self.plateau.num_bad_epochs = self.state.evals_since_lr_change
        return True

    # ------------------------------------------------------------ evaluation
    def evaluate(self) -> tuple[float, float]:
        """(val BLEU with greedy decoding, val loss)."""
        self.model.eval()
        sources, refs = self.val_sources, self.val_refs
        if self.recipe.val_size and len(sources) > self.recipe.val_size:
            sources, refs = sources[:self.recipe.val_size], refs[:self.recipe.val_size]
        translator = Translator(self.model, self.source_tokenizer, self.target_tokenizer, device=self.device)
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
            st.best_bleu, st.best_step, st.evals_since_best = score, st.step, 0
            if self.save_best:
                self.save_best(self)
        else:
            st.evals_since_best += 1
        self.plateau.step(score)
        st.evals_since_lr_change = self.plateau.num_bad_epochs
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
def train_from_recipe(recipe: Recipe, callback: ProgressCallback | None = None,
                      cancel: threading.Event | None = None, resume: bool = False, device: str = "auto",
                      output: str | Path | None = None) -> Path:
    """Reproduce a model from raw data: tokenizers, model, loop; the best checkpoint goes to `output`."""
    output = Path(output or recipe.output)
    resume_dir = output.with_name(output.name + RESUME_SUFFIX)
    set_threads(recipe.threads)
    seed_everything(recipe.seed)
    device = pick_device(device)
    splits, report = load_splits(recipe)
    if resume and (recover_folder(resume_dir) / "source.model").exists():
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
                        card=model_card(config, training))

    trainer = Trainer(model, source, target, recipe, examples, val_sources, val_refs, device, callback, cancel,
                      save_best, resume_dir)
    if resume and not trainer.load_resume():
        raise FileNotFoundError(f"nothing to resume in {resume_dir}")
    state = trainer.run()
    if not trainer.cancel.is_set() and (output / "training.json").exists():
        reason = ("the time limit" if recipe.max_minutes and state.elapsed_s >= recipe.max_minutes * 60 else
                  "the update limit" if recipe.max_steps and state.step >= recipe.max_steps else
                  "the epoch limit" if state.epoch >= recipe.max_epochs else "early stopping")
        # how the whole run ended goes into training.json and the card; the weights stay the best ones
        refresh_card(output, training_update=dict(final=dict(
            step=state.step, epoch=state.epoch, elapsed_s=round(state.elapsed_s, 1), stop_reason=reason,
            history=state.history)))
    return output


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
    source_tokenizer, target_tokenizer = base.source_tokenizer, base.target_tokenizer
    examples = encode_pairs(train_pairs, source_tokenizer, target_tokenizer, model.config.max_src_tokens)
    val_sources, val_refs = data_mod.group_references(heldout_pairs)
    trainer = Trainer(model, source_tokenizer, target_tokenizer, recipe, examples, val_sources, val_refs,
                      base.device, callback, cancel)
    train_state = trainer.run()
    model.eval()
    tuned = Translator(model, source_tokenizer, target_tokenizer, name=f"{base.name}-finetuned", device=base.device)
    return tuned, train_state
