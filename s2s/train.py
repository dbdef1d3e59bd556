"""One training loop for full training and fine-tuning.

Length-bucketed token batches, Adam, gradient clipping, label smoothing,
learning-rate decay on a validation plateau, early stopping and best-checkpoint
selection on validation BLEU, fixed seeds, resumable, cancellable between
batches, progress through a callback. Batches come from a corpus in memory or
streamed from disk (s2s.stream); under torchrun the same loop runs on every
rank with DistributedDataParallel (s2s.distributed).
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.optim.lr_scheduler import ReduceLROnPlateau

from . import data as data_mod
from . import distributed
from .api import DecodeOptions, Translator, pick_device
from .card import model_card, refresh_card
from .checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint, write_checkpoint
from .config import DECODING_FIELDS, Config
from .evaluate import corpus_bleu
from .files import atomic_folder, recover_folder
from .model import Seq2Seq
from .recipe import Recipe, build_config, load_splits, with_data
from .tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

RESUME_SUFFIX = ".resume"
SAVES_SUFFIX = ".saves"
CARRIED_FILE = "carried.json"  # in the resume state: what --init-from carried over (restarts, decoding)


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
    data_position: dict = field(default_factory=dict)  # where a streamed epoch resumes (s2s.stream)


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
    """Runs the loop; `cancel` (a threading.Event) stops it within one batch.

    `train_examples`: encoded pairs (held in memory) or a batch source (data.InMemoryBatches,
    stream.StreamingBatches). `group`: this process's place in a torchrun job (default: alone); every rank
    runs the same loop, rank 0 alone evaluates, saves and reports.
    """

    def __init__(self, model: Seq2Seq, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, recipe: Recipe,
                 train_examples: list, val_sources: list[str], val_refs: list[list[str]],
                 device: str | torch.device = "cpu", callback: ProgressCallback | None = None,
                 cancel: threading.Event | None = None, save_best: Callable[["Trainer"], None] | None = None,
                 resume_dir: Path | None = None, group: distributed.Group | None = None) -> None:
        self.model, self.recipe = model.to(device), recipe
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        self.train_examples, self.val_sources, self.val_refs = train_examples, val_sources, val_refs
        self.source = (train_examples if hasattr(train_examples, "batches") else
                       data_mod.InMemoryBatches(train_examples, recipe.batch_tokens, recipe.seed))
        self.device = torch.device(device)
        self.group = group or distributed.Group(device=self.device)
        self.loss = distributed.wrap(self.model, self.group)  # forward() = the training loss (DDP in a job)
        self.callback = callback if callback and self.group.main else (lambda p: None)
        self.cancel = cancel or threading.Event()
        self.save_best = save_best
        self.resume_dir = resume_dir
        self.optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        # lr × lr_decay after lr_patience evaluations without a better score (BLEU, else -loss), down to min_lr
        self.plateau = ReduceLROnPlateau(self.optimizer, mode="max", factor=recipe.lr_decay,
                                         patience=max(recipe.lr_patience - 1, 0), threshold=0.0,
                                         threshold_mode="abs", min_lr=recipe.min_lr)
        self.state = TrainState()
        self.carried: dict = {}  # what a checkpoint continued from says of the run (restarts): kept by --resume
        val_examples = encode_pairs([(s, r[0]) for s, r in zip(val_sources, val_refs)], source_tokenizer,
                                    target_tokenizer, model.config.max_src_tokens)
        self.val_batches = list(data_mod.token_batches(val_examples, 4000, seed=0, shuffle=False))
        self.use_amp = self.device.type == "cuda"

    # ------------------------------------------------------------ persistence
    def save_resume(self) -> None:
        """Weights, tokenizers, Adam and the plateau schedule, position in the epoch: all swapped in at once."""
        if self.resume_dir is None or not self.group.main:
            return
        tensors, meta = _optimizer_tensors(self.optimizer)
        meta["plateau"] = self.plateau.state_dict()
        with atomic_folder(self.resume_dir) as tmp:
            write_checkpoint(tmp, self.model, self.source_tokenizer, self.target_tokenizer,
                             training=asdict(self.state))
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "optimizer.json").write_text(json.dumps(meta))
            (tmp / CARRIED_FILE).write_text(json.dumps(self.carried))
        if self.recipe.keep_saves:  # the last few saves of a run, averaged, often beat its best one
            saves = self.resume_dir.with_name(self.resume_dir.name.removesuffix(RESUME_SUFFIX) + SAVES_SUFFIX)
            with atomic_folder(saves / f"step-{self.state.step:05d}") as tmp:
                write_checkpoint(tmp, self.model, self.source_tokenizer, self.target_tokenizer,
                                 training=asdict(self.state))

    def load_resume(self) -> bool:
        """Restore the saved state; in a job rank 0 reads it and every rank gets a copy."""
        found = self._read_resume() if self.group.main else False
        if self.group.active:
            found = self.group.broadcast(found)
            if found:
                self._share_state()
        return found

    def _share_state(self) -> None:
        """Rank 0's weights, Adam moments, schedule and counters, on every rank."""
        state = self.group.broadcast(_to_cpu((self.model.state_dict(), self.optimizer.state_dict(),
                                              self.plateau.state_dict(), asdict(self.state)))
                                     if self.group.main else None)
        if not self.group.main:
            self.model.load_state_dict(state[0])
            self.optimizer.load_state_dict(state[1])
            self.plateau.load_state_dict(state[2])
            self.state = TrainState(**state[3])

    def _read_resume(self) -> bool:
        folder = self.resume_dir and recover_folder(self.resume_dir)
        if folder is None or not (folder / "optimizer.safetensors").exists():
            return False
        model, _, _ = load_checkpoint(folder, self.device)
        self.model.load_state_dict(model.state_dict())
        meta = json.loads((folder / "optimizer.json").read_text())
        _restore_optimizer(self.optimizer, load_file(str(folder / "optimizer.safetensors")), meta)
        self.state = TrainState(**json.loads((folder / "training.json").read_text()))
        carried = folder / CARRIED_FILE
        self.carried = json.loads(carried.read_text()) if carried.is_file() else {}
        if "plateau" in meta:
            self.plateau.load_state_dict(meta["plateau"])
        else:  # saved before the schedule was stored: rebuild it from the counters in training.json
            self.plateau.best = self.state.best_bleu if self.state.history else self.plateau.best
            self.plateau.num_bad_epochs = self.state.evals_since_lr_change
        return True

    def continue_from(self, start: "Start") -> None:
        """Go on from a finished checkpoint: its counters, its last learning rate, and its own validation
        score (measured now) as the score a new save must beat."""
        self.state = copy.deepcopy(start.state)
        self.carried = copy.deepcopy(start.carried)
        self.state.evals_since_best = self.state.evals_since_lr_change = 0
        for group in self.optimizer.param_groups:
            group["lr"] = start.lr
        if self.group.main:
            bleu, _ = self.evaluate()
            self.state.best_bleu, self.state.best_step = bleu, self.state.step
            if self.save_best:  # the output holds the best so far from the start, as a new run's does
                self.save_best(self)
        if self.group.active:
            self.state.best_bleu = self.group.broadcast(self.state.best_bleu)
        self.plateau.best = self.state.best_bleu

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
        r, st, group = self.recipe, self.state, self.group
        started = time.perf_counter() - st.elapsed_s
        stop = cancelled = False
        window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
        last_loss = math.nan
        while not stop and st.epoch < r.max_epochs:
            # the same seeded order on every run and every rank; a resumed epoch starts after what was done
            batches = self.source.batches(st.epoch, st.batches_done_in_epoch, st.data_position)
            for index, (examples, position, last) in enumerate(_flag_last(batches), start=st.batches_done_in_epoch):
                if not group.active and self.cancel.is_set():
                    stop = cancelled = True
                    break
                loss, weight = self._train_step(examples)
                tokens = sum(len(t) + 1 for _, t in examples)  # the global batch's target tokens
                st.step += 1
                st.batches_done_in_epoch, st.data_position = index + 1, position
                st.target_tokens += tokens
                st.elapsed_s = time.perf_counter() - started
                out_of_time = r.max_minutes and st.elapsed_s >= r.max_minutes * 60
                if group.active:  # one all-reduce per update: the global loss, and whether any rank must stop
                    loss, cancel_votes, late_votes = group.sum([loss * weight / group.world,
                                                                float(self.cancel.is_set()), float(bool(out_of_time))])
                    cancelled, out_of_time = cancel_votes > 0, late_votes > 0
                window_loss += loss * tokens
                window_tokens += tokens
                if st.step % 10 == 0 or last:
                    now = time.perf_counter()
                    self.callback(Progress("step", st.step, st.epoch, window_loss / max(window_tokens, 1),
                                           window_tokens / max(now - window_start, 1e-9),
                                           self.optimizer.param_groups[0]["lr"], st.elapsed_s))
                    last_loss = window_loss / max(window_tokens, 1)
                    window_loss, window_tokens, window_start = 0.0, 0, now
                if cancelled:
                    stop = True
                    break
                out_of_steps = r.max_steps and st.step >= r.max_steps
                if r.eval_every and st.step % r.eval_every == 0 and not (out_of_time or out_of_steps):
                    stop = self._evaluate_and_save(last_loss)
                if stop or out_of_time or out_of_steps:
                    stop = True
                    break
            else:
                st.epoch += 1
                st.batches_done_in_epoch, st.data_position = 0, {}
                if not r.eval_every:
                    stop = self._evaluate_and_save(last_loss) or stop
        if not group.active:  # alone, a cancel at any moment counts; in a job only the one all ranks agreed on
            cancelled = self.cancel.is_set()
        if not cancelled and (r.eval_every or st.batches_done_in_epoch):
            self._evaluate_and_save(last_loss if st.step else math.nan)
        elif cancelled:
            self.save_resume()
        self.callback(Progress("done", st.step, st.epoch, elapsed_s=st.elapsed_s, best_bleu=st.best_bleu,
                               message="cancelled" if cancelled else "finished"))
        return st

    def _evaluate_and_save(self, train_loss: float) -> bool:
        # rank 0 evaluates; every rank takes its scores, so early stopping and the lr schedule agree
        bleu, val_loss = self.group.broadcast(self.evaluate() if self.group.main else None)
        stop = self._after_eval(bleu, val_loss, train_loss)
        self.save_resume()
        return stop

    def _train_step(self, examples: list) -> tuple[float, float]:
        """One update on a global batch (this rank's slice of it): (the slice's mean loss, its weight)."""
        self.model.train()
        mine, weight = distributed.shard(examples, self.group)
        batch = data_mod.make_batch(mine, PAD_ID, BOS_ID, EOS_ID).to(self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            loss = self.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out,
                             label_smoothing=self.recipe.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * weight if self.group.active else loss).backward()
        if self.recipe.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.clip)
        self.optimizer.step()
        return float(loss.detach()), weight


def _flag_last(items):
    """(examples, position, is_last) for each (examples, position): the trainer reports at an epoch's end."""
    iterator = iter(items)
    previous = next(iterator, None)
    for item in iterator:
        yield (*previous, False)
        previous = item
    if previous is not None:
        yield (*previous, True)


def _to_cpu(obj):
    """Tensors moved to the CPU inside nested tuples, lists and dicts (to broadcast them between ranks)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


# ---------------------------------------------------------------------- continuing a finished checkpoint
# Recipe fields that say where a run writes and how long it may take, not what it learns from.
RUN_FIELDS = ("output", "max_minutes", "max_steps", "max_epochs", "threads", "keep_saves", "data_path",
              "tatoeba_path", "description")


def with_saved_decoding(config: Config, resume_dir: Path) -> Config:
    """`config` with the decoding settings of the saved resume state, when there is one: a run continued
    with --init-from carries the checkpoint's tuned α and β, and --resume must not reset them to the
    recipe's, or its saves would decode differently and refuse to be averaged with the earlier ones."""
    saved = recover_folder(resume_dir) / CONFIG_FILE
    if not saved.is_file():
        return config
    found = Config.load(saved)
    return replace(config, **{k: getattr(found, k) for k in DECODING_FIELDS})


@dataclass
class Start:
    """A checkpoint to continue training from: its model, tokenizers and counters, and what it says about
    itself that stays true of the continued run (how its decoding was tuned, earlier restarts)."""
    model: Seq2Seq
    source: Tokenizer
    target: Tokenizer
    state: TrainState
    lr: float
    carried: dict


def load_start(folder: str | Path, recipe: Recipe, lr: float | None = None) -> Start:
    """Read a checkpoint trained by `recipe` to continue from; ValueError if it is another architecture.

    Its weights (fp16 in a bundled checkpoint) become the fp32 starting point; its counters and validation
    history go on; Adam restarts, at the last learning rate of its history, because a checkpoint keeps no
    optimizer state (or at `lr`, when given)."""
    model, source, target = load_checkpoint(folder)
    wanted = asdict(build_config(recipe, source, target))
    found = asdict(model.config)
    differ = [f"{k}: recipe {wanted[k]!r}, checkpoint {found.get(k)!r}" for k in wanted
              if k not in DECODING_FIELDS and wanted[k] != found.get(k)]
    if differ:
        raise ValueError(f"{folder} was not trained by the recipe {recipe.name!r}: " + "; ".join(differ))
    training_file = Path(folder) / "training.json"
    training = json.loads(training_file.read_text(encoding="utf-8")) if training_file.is_file() else {}
    known = set(TrainState.__dataclass_fields__)
    state = TrainState(**{k: v for k, v in training.get("state", {}).items() if k in known})
    history = training.get("final", {}).get("history") or state.history
    lr = lr if lr is not None else history[-1]["lr"] if history else recipe.lr
    restarts = list(training.get("restarts", []))
    restart = dict(step=state.step, from_folder=str(folder), lr=lr,
                   why="continued from a saved checkpoint: Adam's moments restart from zero")
    # a field newer than the checkpoint's recipe had its default value there
    before, now, default = training.get("recipe", {}), asdict(recipe), asdict(Recipe())
    before = {k: before.get(k, default[k]) for k in now} if before else {}
    changed = {k: [before[k], now[k]] for k in before
               if k not in RUN_FIELDS and k != "model" and before[k] != now[k]}
    if changed:  # e.g. a data setting new in this round: the card says from which update it holds
        restart["recipe_changes"] = changed
    restarts.append(restart)
    carried = {k: training[k] for k in ("decoding",) if k in training}
    carried["restarts"] = restarts
    return Start(model.float(), source, target, state, lr, carried)


# ---------------------------------------------------------------------- full training from a recipe
def train_from_recipe(recipe: Recipe, callback: ProgressCallback | None = None,
                      cancel: threading.Event | None = None, resume: bool = False, device: str = "auto",
                      output: str | Path | None = None, data: str | Path | None = None,
                      init_from: str | Path | None = None, restart_lr: float | None = None) -> Path:
    """Reproduce a model from raw data: tokenizers, model, loop; the best checkpoint goes to `output`.

    `data`: a data root searched first for the recipe's corpora (s2s.datasets). `init_from`: a checkpoint
    of this recipe to continue from when its resume state is gone (see `continue_from`); `restart_lr`: Adam's
    learning rate there instead of the last one of its history (a round on new data needs room to move). Under torchrun
    every rank calls this; rank 0 trains the tokenizers, writes and reports.
    """
    group = distributed.setup(pick_device(device))
    try:
        return _train_from_recipe(recipe, callback, cancel, resume, group, output, data, init_from, restart_lr)
    finally:
        distributed.teardown(group)


def _train_from_recipe(recipe: Recipe, callback: ProgressCallback | None, cancel: threading.Event | None,
                       resume: bool, group: distributed.Group, output: str | Path | None,
                       data: str | Path | None, init_from: str | Path | None = None,
                       restart_lr: float | None = None) -> Path:
    output = Path(output or recipe.output)
    resume_dir = output.with_name(output.name + RESUME_SUFFIX)
    # a job shares the cores of a machine between its processes; alone, 0 means all of them
    set_threads(recipe.threads or (max(1, (os.cpu_count() or 1) // group.local_world) if group.active else 0))
    seed_everything(recipe.seed)
    device = group.device
    recipe = with_data(recipe, data)
    inputs = _StreamInputs(recipe) if recipe.corpus == "stream" else _MemoryInputs(recipe)
    protos = None
    start = load_start(init_from, recipe, restart_lr) if init_from is not None and not resume else None
    if start is not None:
        refuse_spent_limit(start.state, recipe)  # before the validation pass and the first save
    if group.main:  # the tokenizers: rank 0 trains (or reloads) them, every rank gets the same bytes
        if start is not None:
            source, target = start.source, start.target
        elif resume and (recover_folder(resume_dir) / "source.model").exists():
            source = Tokenizer.load(resume_dir / "source.model")
            target = Tokenizer.load(resume_dir / "target.model")
        else:
            pairs = inputs.tokenizer_pairs()
            source = Tokenizer.train([s for s, _ in pairs], recipe.src_vocab_size)
            target = Tokenizer.train([t for _, t in pairs], recipe.tgt_vocab_size)
        protos = (source.model_proto, target.model_proto)
    source, target = (Tokenizer(proto) for proto in group.broadcast(protos))
    config = build_config(recipe, source, target) if start is None else start.model.config
    if resume:  # (start is None then)
        config = with_saved_decoding(config, resume_dir)
    model = Seq2Seq(config) if start is None else start.model.train()
    batches = inputs.batches(source, target, config.max_src_tokens)
    val_sources, val_refs = data_mod.group_references(inputs.val)
    hardware = (f"{cpu_name()} ({torch.get_num_threads()} threads)" if device.type == "cpu"
                else torch.cuda.get_device_name())
    if group.active:
        hardware = f"{group.world} processes (torchrun, DDP), each on {hardware}"

    def save_best(trainer: Trainer) -> None:
        training = dict(recipe=asdict(recipe), data_report=inputs.report(), hardware=hardware,
                        train_pairs=inputs.train_pairs, state=asdict(trainer.state),
                        parameters=sum(p.numel() for p in model.parameters()))
        training.update(trainer.carried)
        save_checkpoint(output, trainer.model, source, target, training=training, half=recipe.half,
                        card=model_card(config, training))

    trainer = Trainer(model, source, target, recipe, batches, val_sources, val_refs, device, callback, cancel,
                      save_best if group.main else None, resume_dir, group)
    if resume and not trainer.load_resume():
        raise FileNotFoundError(f"nothing to resume in {resume_dir}")
    if resume:
        refuse_spent_limit(trainer.state, recipe)
    if start is not None:
        trainer.continue_from(start)
    if group.active:
        torch.manual_seed(recipe.seed + 7919 * group.rank)  # each rank its own dropout masks
    state = trainer.run()
    if group.main and not trainer.cancel.is_set() and (output / "training.json").exists():
        reason = ("the time limit" if recipe.max_minutes and state.elapsed_s >= recipe.max_minutes * 60 else
                  "the update limit" if recipe.max_steps and state.step >= recipe.max_steps else
                  "the epoch limit" if state.epoch >= recipe.max_epochs else "early stopping")
        # how the whole run ended goes into training.json and the card; the weights stay the best ones
        refresh_card(output, training_update=dict(final=dict(
            step=state.step, epoch=state.epoch, elapsed_s=round(state.elapsed_s, 1), stop_reason=reason,
            history=state.history)))
    return output


def refuse_spent_limit(state: TrainState, recipe: Recipe) -> None:
    """ValueError when a limit is spent already. The limits count the whole run, across --resume and
    --init-from (a continued run would otherwise stop after one update and call itself finished)."""
    across = "(the limit counts across --resume and --init-from)"
    if recipe.max_minutes and state.elapsed_s >= recipe.max_minutes * 60:
        minutes = state.elapsed_s / 60
        raise ValueError(f"--max-minutes {recipe.max_minutes:g} is spent already: this run has trained "
                         f"{minutes:.0f} minutes in all {across}. For {recipe.max_minutes:g} more minutes give "
                         f"--max-minutes {minutes + recipe.max_minutes:.0f}.")
    if recipe.max_steps and state.step >= recipe.max_steps:
        raise ValueError(f"--max-steps {recipe.max_steps} is spent already: this run has made {state.step} "
                         f"updates in all {across}. For {recipe.max_steps} more updates give "
                         f"--max-steps {state.step + recipe.max_steps}.")
    if state.epoch >= recipe.max_epochs:
        raise ValueError(f"max_epochs = {recipe.max_epochs} is reached already: this run is at epoch "
                         f"{state.epoch}; raise max_epochs in the recipe to go on.")


class _MemoryInputs:
    """A recipe's corpus read whole (s2s.recipe.load_splits)."""

    def __init__(self, recipe: Recipe) -> None:
        splits, self._report = load_splits(recipe)
        self.train, self.val, self.train_pairs = splits["train"], splits["val"], len(splits["train"])

    def tokenizer_pairs(self) -> list[tuple[str, str]]:
        return self.train

    def batches(self, source: Tokenizer, target: Tokenizer, max_src_tokens: int) -> list:
        return encode_pairs(self.train, source, target, max_src_tokens)

    def report(self) -> dict:
        return self._report


class _StreamInputs:
    """A recipe's corpus streamed from disk (corpus = "stream"): s2s.stream."""

    def __init__(self, recipe: Recipe) -> None:
        from . import stream

        self.recipe, self.stream = recipe, stream
        self.corpus = stream.PairFile.open(recipe.data_path, recipe.src_lang, recipe.tgt_lang)
        if recipe.val_path:
            val, self.start = stream.PairFile.open(recipe.val_path, recipe.src_lang, recipe.tgt_lang).pairs(), None
        else:  # no validation file: the first n_val pairs, which training then skips
            val, self.start = stream.held_out_head(self.corpus, recipe.n_val)
        self.val_report = data_mod.DropReport()
        self.val = stream.clean(val, recipe.max_words, self.val_report)
        self.train_pairs = None  # not counted: the corpus is never held
        self.source = None

    def tokenizer_pairs(self) -> list[tuple[str, str]]:
        r = self.recipe
        return self.stream.sample_pairs(self.corpus, r.tokenizer_sample, r.seed, r.max_words, self.start)

    def batches(self, source: Tokenizer, target: Tokenizer, max_src_tokens: int):
        r = self.recipe
        self.source = self.stream.StreamingBatches(
            self.corpus, lambda pairs: encode_pairs(pairs, source, target, max_src_tokens), r.batch_tokens,
            r.seed, r.buffer_pairs, r.max_words, self.start)
        return self.source

    def report(self) -> dict:
        seen = self.source.report.summary() if self.source else ""
        return {"train": f"streamed from {self.recipe.data_path}; so far {seen}", "val": self.val_report.summary()}


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
    tuned = Translator(model, source_tokenizer, target_tokenizer, name=f"{base.name}-finetuned", device=base.device,
                       reverse=base.reverse)  # the base's reverse model still reranks: it reads the same languages
    return tuned, train_state
