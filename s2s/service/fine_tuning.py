"""The Fine-tune tab: sentence pairs from the text box or uploaded files, a copy of the base model trained
in a worker thread with live progress, and the result added to the browser session's own models.

`fine_tune` reads as its three stages: `_prepare` (read, check and split the pairs, measure the base
model), `_run` (train in a worker, stream its progress), `_finish` (measure, save, zip, register).
"""
from __future__ import annotations

import csv
import logging
import math
import queue
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import plots
from ..api import Translator
from ..card import model_card
from ..checkpoint import save_checkpoint
from ..data import HELD_OUT_MARKS, TRAIN_MARKS, DataError, PairRow, align_lines, clean_pairs, decode_text, \
    group_references, parse_pairs, token_batches
from ..evaluate import corpus_bleu
from ..files import zip_folder
from ..train import Progress, TrainState, encode_pairs, validation_loss
from ..train import fine_tune as train_a_copy
from .common import UserError, gpu, md, number
from .models import OwnModel, Session, get_translator, model_choices, model_menu

log = logging.getLogger("s2s.service")

MAX_PAIRS = 5000  # per fine-tuning run
MAX_EPOCHS = 20
MAX_MINUTES = 10.0  # fine-tuning wall time
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_WORDS = 100  # per side of a training pair; longer pairs are dropped (and counted)
MIN_LR, MAX_LR = 1e-5, 1e-2
HELDOUT_FRACTION = 0.1
MAX_TABLE_ROWS = 50
Pair = tuple[str, str]


# ---------------------------------------------------------------------- the pairs
def read_training_pairs(text: str | None, files: Sequence[Any] | None = None) -> tuple[list[PairRow], str]:
    """Pairs from the text box and/or uploaded files (one TSV/CSV, or two line-aligned text files), and
    where they came from, in words, with the numbers of the lines that were skipped. A third column 'test'
    holds a pair out. A bad line is skipped and reported; the good ones are kept."""
    rows: list[PairRow] = []
    origins: list[str] = []
    try:
        if text and text.strip():
            if len(text.encode("utf-8")) > MAX_FILE_BYTES:
                raise UserError(f"The pasted text is over {MAX_FILE_BYTES // 1_000_000} MB; upload a file instead.")
            pasted, bad = parse_lines(text)
            rows += pasted
            origins.append(f"{len(pasted)} pairs from the text box" + _skipped(bad))
        paths = [_file_path(f) for f in (files or [])]
        if len(paths) > 2:
            raise UserError("Upload one TSV/CSV file, or two line-aligned text files (source, target).")
        texts = [_read_upload(p) for p in paths]
        bad = {}
        if len(paths) == 1:
            try:
                file_rows = parse_pairs(texts[0], paths[0].name, marks=True)
            except DataError:  # a bad line: keep the good ones, line by line
                file_rows, bad = parse_lines(texts[0])
        else:
            file_rows = align_lines(texts[0], texts[1], paths[0].name, paths[1].name) if paths else []
    except DataError as err:
        raise UserError(f"{err}.") from None
    if paths:
        rows += file_rows
        origins.append(f"{len(file_rows)} pairs from {' + '.join(p.name for p in paths)}" + _skipped(bad))
    if not rows:
        raise UserError("No sentence pairs: paste one pair per line, the source and its translation separated by a "
                        "Tab, ' ||| ' or a comma, or upload a TSV/CSV file. " + ", ".join(origins))
    return rows, ", ".join(origins)


def parse_lines(text: str) -> tuple[list[PairRow], dict[int, str]]:
    """Pasted pairs, one per line: source and target separated by a Tab, ' ||| ' or a comma (CSV quoting
    allowed), an optional third column 'test' or 'train'. Returns the pairs and {line number: why} for the
    lines that are not pairs; blank lines and a 'source,target' header are skipped silently. When some lines
    use a Tab or ' ||| ', a comma separates only in a quoted CSV line: "Yes, I know" is then a line whose Tab
    went missing, reported, not the pair ("Yes", " I know")."""
    rows, bad = [], {}
    lines = text.splitlines()
    marked = any("\t" in line or "|||" in line for line in lines)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" in line:
            cols = line.split("\t")
        elif "|||" in line:
            cols = [col.strip() for col in line.split("|||")]
        else:
            cols = next(csv.reader([line]), [])
        if [c.strip().lower() for c in cols[:2]] in (["source", "target"], ["src", "tgt"]) and not rows:
            continue
        mark = cols[2].strip().lower() if len(cols) == 3 else ""
        if marked and len(cols) > 1 and "\t" not in line and "|||" not in line and not line.lstrip().startswith('"'):
            bad[number] = "no Tab or ' ||| ' (its comma is not read as a separator: quote both sides for CSV)"
        elif len(cols) not in (2, 3):
            bad[number] = "no separator" if len(cols) < 2 else f"{len(cols)} columns"
        elif not cols[0].strip() or not cols[1].strip():
            bad[number] = "an empty side"
        elif mark not in HELD_OUT_MARKS | TRAIN_MARKS:
            bad[number] = f"third column {mark[:20]!r} is not 'test' or 'train'"
        else:
            rows.append(PairRow(cols[0], cols[1], number, mark in HELD_OUT_MARKS))
    return rows, bad


def _skipped(bad: dict[int, str]) -> str:
    """' (skipped line 3: no separator; line 7: 4 columns)' for at most 10 lines, '' for none."""
    if not bad:
        return ""
    shown = "; ".join(f"line {n}: {why}" for n, why in list(bad.items())[:10])
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    return f" (skipped {len(bad)} line{'s' * (len(bad) != 1)}: {shown}{more})"


def _read_upload(path: Path) -> str:
    """An uploaded file's text; its size is checked before its bytes are read (at most the limit + 1)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DataError(f"{path.name[:100]} is {path.stat().st_size / 1e6:.1f} MB; the limit is "
                            f"{MAX_FILE_BYTES // 1_000_000} MB")
        with path.open("rb") as file:
            return decode_text(file.read(MAX_FILE_BYTES + 1), path.name[:100], MAX_FILE_BYTES)
    except OSError:
        raise UserError(f"An uploaded file could not be read ({path.name[:100]}).") from None
    except DataError as err:
        raise UserError(f"{err}. Upload a UTF-8 TSV/CSV or plain text file.") from None


def _file_path(item: Any) -> Path:
    path = item if isinstance(item, (str, Path)) else getattr(item, "name", None) or (
        item.get("path") if isinstance(item, dict) else None)
    if not path:
        raise UserError("An uploaded file could not be read.")
    return Path(path)


def split_pairs(rows: Sequence[PairRow], seed: int = 0) -> tuple[list[Pair], list[Pair], str]:
    """(train, held out, note): the rows marked 'test', else a seeded 10% (at least one pair)."""
    train_raw = [(r.source, r.target) for r in rows if not r.held_out]
    held_raw = [(r.source, r.target) for r in rows if r.held_out]
    if not held_raw:
        count = max(1, round(HELDOUT_FRACTION * len(rows)))
        chosen = set(random.Random(seed).sample(range(len(train_raw)), min(count, max(len(train_raw) - 1, 0))))
        held_raw = [p for i, p in enumerate(train_raw) if i in chosen]
        train_raw = [p for i, p in enumerate(train_raw) if i not in chosen]
        how = f"{len(held_raw)} held out at random (10%, at least 1)"
    else:
        how = f"{len(held_raw)} held out (marked 'test')"
    train, train_report = clean_pairs(train_raw, MAX_WORDS)
    heldout, held_report = clean_pairs(held_raw, MAX_WORDS)
    # a held-out sentence that is also trained on would inflate the "after" BLEU: train without it
    held_sources = {source.casefold() for source, _ in heldout}
    overlap = sum(source.casefold() in held_sources for source, _ in train)
    train = [(source, target) for source, target in train if source.casefold() not in held_sources]
    dropped = sum(train_report.dropped.values()) + sum(held_report.dropped.values())
    note = f"{len(train)} training pairs, {how}"
    if overlap:
        note += f"; {overlap} training pair{'s' * (overlap != 1)} left out (the same source sentence is held out)"
    if dropped:
        reasons = train_report.dropped + held_report.dropped
        note += f"; dropped {dropped} ({', '.join(f'{n} {r}' for r, n in reasons.most_common())})"
    return train, heldout, note


def validate_fine_tune(rows: Sequence[PairRow], epochs: Any, lr: Any, origin: str = "") -> tuple[int, float]:
    if len(rows) > MAX_PAIRS:
        raise UserError(f"{len(rows):,} pairs; the limit is {MAX_PAIRS:,} per fine-tuning run.")
    if len(rows) < 2:
        raise UserError("At least 2 pairs are needed: one or more to train on and one held out to measure the "
                        "change." + (f" Read {origin}." if origin else ""))
    return number(epochs, "Epochs", int, 1, MAX_EPOCHS), number(lr, "Learning rate", float, MIN_LR, MAX_LR)


# ---------------------------------------------------------------------- cancelling
def new_cancel_token() -> threading.Event:
    """A fresh cancel flag for one fine-tuning run (kept in the session's gr.State)."""
    return threading.Event()


def cancel_fine_tune(token: threading.Event | None) -> str:
    """Ask a running fine-tuning to stop after its current batch."""
    if not isinstance(token, threading.Event):
        return "Nothing is running."
    token.set()
    return "Cancelling: training stops after the current batch."


# ---------------------------------------------------------------------- one run
@dataclass
class _Job:
    """One fine-tuning run: its inputs, checked, and the curves drawn while it runs."""

    base_model: str
    base: Translator
    train: list[Pair]
    heldout: list[Pair]
    epochs: int
    lr: float
    intro: str  # what was read and what will happen, in words
    batch_tokens: int
    total_steps: int
    sources: list[str] = field(default_factory=list)  # held-out sources, each with its references
    refs: list[list[str]] = field(default_factory=list)
    before: list[str] = field(default_factory=list)  # the base model's translations of the held-out sources
    bleu_before: float = math.nan
    train_points: list[tuple[float, float]] = field(default_factory=list)  # (update, loss)
    heldout_points: list[tuple[float, float]] = field(default_factory=list)

    def update(self, progress: float, status: str, **extra) -> dict:
        return dict(progress=progress, status=md(status),
                    loss=plots.loss_figure(self.train_points, self.heldout_points), **extra)

    def table(self, after: list[str] | None = None) -> list[list[str]]:
        return [[s, r[0], b] + ([a] if after is not None else [])
                for s, r, b, a in zip(self.sources[:MAX_TABLE_ROWS], self.refs, self.before, after or self.before)]


@gpu(duration=MAX_MINUTES * 60 + 60)
def fine_tune(base_model: str, pairs_text: str | None = None, files: Sequence[Any] | None = None, epochs: Any = 3,
              lr: Any = 5e-4, session: Session | None = None, cancel: threading.Event | None = None
              ) -> Iterator[dict]:
    """Fine-tune a copy of `base_model` on the user's pairs; yield progress dicts, the last one with the model.

    Every dict has "progress" (0..1), "status" (markdown) and "loss" (figure); the second adds the held-out
    "table" with the base model's translations; the last adds "table" (before/after), "bleu", "choices"
    (names), "menu" (the model picker's (label, name) choices), "selected", "zip" and "session". Cancelling
    (the `cancel` Event) stops after the current batch and adds no model. Errors in the input raise UserError
    before training starts.
    """
    session = session if session is not None else Session()
    cancel = cancel if isinstance(cancel, threading.Event) else threading.Event()
    job = _prepare(base_model, pairs_text, files, epochs, lr, session)
    yield job.update(0.0, job.intro + " Translating the held-out pairs with the base model…")
    _measure_base(job)
    yield job.update(0.0, job.intro + " Training…", table=job.table())
    outcome: dict = {}
    yield from _run(job, cancel, outcome)
    yield _finish(job, outcome, session, cancel)


def _prepare(base_model: str, pairs_text: str | None, files: Sequence[Any] | None, epochs: Any, lr: Any,
             session: Session) -> _Job:
    """Read, check and split the pairs; plan the updates. Every input error is raised here."""
    session.check_room()
    rows, origin = read_training_pairs(pairs_text, files)
    epochs, lr = validate_fine_tune(rows, epochs, lr, origin)
    base = get_translator(base_model, session)
    train, heldout, note = split_pairs(rows)
    if not train or not heldout:
        raise UserError(f"After cleaning: {note}. Both the training and the held-out part need at least one pair.")
    examples = encode_pairs(train, base.source_tokenizer, base.target_tokenizer, base.config.max_src_tokens)
    # about 8 updates per epoch on small data (a few hundred pairs), at most 1500 target tokens per batch
    batch_tokens = int(min(1500, max(200, sum(len(t) + 1 for _, t in examples) // 8)))
    per_epoch = sum(1 for _ in token_batches(examples, batch_tokens, seed=1, shuffle=False))
    intro = (f"Read {origin}: {note}. {epochs} epoch{'s' * (epochs != 1)} × {per_epoch} updates, "
             f"learning rate {lr:g}.")
    sources, refs = group_references(heldout)
    return _Job(base_model, base, train, heldout, epochs, lr, intro, batch_tokens, max(1, per_epoch * epochs),
                sources, refs)


def _measure_base(job: _Job) -> None:
    """The base model's held-out translations, BLEU and loss (the loss curve's step 0, as the trainer measures)."""
    base = job.base
    job.before = base.translate_batch(job.sources)
    job.bleu_before = corpus_bleu(job.before, job.refs).score
    held = encode_pairs([(s, r[0]) for s, r in zip(job.sources, job.refs)], base.source_tokenizer,
                        base.target_tokenizer, base.config.max_src_tokens)
    batches = list(token_batches(held, 4000, seed=0, shuffle=False))
    job.heldout_points.append((0, validation_loss(base.model, batches, base.device)))


def _run(job: _Job, cancel: threading.Event, outcome: dict) -> Iterator[dict]:
    """Train a copy in a worker thread; yield a progress update per evaluation and at most every 0.5 s.

    Fills `outcome` with "model" and "train_state", or "error". If the caller stops listening (the browser
    went away), training is cancelled instead of leaking the thread.
    """
    events: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            outcome["model"], outcome["train_state"] = train_a_copy(
                job.base, job.train, job.heldout, epochs=job.epochs, lr=job.lr, batch_tokens=job.batch_tokens,
                seed=1, callback=events.put, cancel=cancel, max_minutes=MAX_MINUTES)
        except BaseException as err:  # noqa: BLE001 - handed to _finish
            outcome["error"] = err
        finally:
            events.put(None)

    worker = threading.Thread(target=work, name="s2s-fine-tune", daemon=True)
    last_yield, progress = 0.0, 0.0
    try:
        worker.start()
        while (event := events.get()) is not None:
            if event.kind == "done":
                continue  # the final update (_finish) says it
            if event.kind == "step":
                progress = min(0.99, event.step / job.total_steps)
            status = _progress_status(job, event)
            now = time.monotonic()
            if event.kind != "step" or now - last_yield > 0.5:
                last_yield = now
                yield job.update(progress, status)
    finally:
        if worker.is_alive():
            cancel.set()


def _progress_status(job: _Job, event: Progress) -> str:
    """Record the event on the loss curves; describe it in words."""
    if event.kind == "step":
        job.train_points.append((event.step, event.loss))
        return (f"Epoch {event.epoch + 1}/{job.epochs}, update {event.step}/{job.total_steps}: training loss "
                f"{event.loss:.3f}, {event.tokens_per_s:,.0f} target tokens/s, {event.elapsed_s:.0f} s")
    job.heldout_points.append((event.step, event.val_loss))
    bleu = "" if math.isnan(event.val_bleu) else f", held-out BLEU {event.val_bleu:.1f}"
    return f"After epoch {event.epoch}: held-out loss {event.val_loss:.3f}{bleu}"


def _finish(job: _Job, outcome: dict, session: Session, cancel: threading.Event) -> dict:
    """The last update: cancelled (no model), or the new model measured, saved, zipped and added to the session."""
    if "error" in outcome:
        err = outcome["error"]
        log.error("fine-tuning failed", exc_info=err)
        raise UserError(f"Fine-tuning failed: {type(err).__name__}: {err}")
    train_state: TrainState = outcome["train_state"]
    if cancel.is_set():
        return job.update(1.0, f"Cancelled after {train_state.step} updates. No model was added; the base model "
                               f"{job.base_model} is unchanged.")
    tuned: Translator = outcome["model"]
    after = tuned.translate_batch(job.sources)
    bleu_after = corpus_bleu(after, job.refs).score
    tuned.name = name = _new_name(job.base_model, session)
    folder = _save(job, tuned, train_state, bleu_after, session)
    archive = zip_folder(folder)
    session.add_model(name, OwnModel(tuned, f"fine-tuned in this browser session from {job.base_model}", folder,
                                     archive))
    held = len(job.sources)
    return job.update(
        1.0, f"Done in {train_state.elapsed_s:.1f} s ({train_state.step} updates). New model: {name} — it is now "
             f"in the model list of this browser session only; download it below. {job.intro}",
        table=job.table(after), choices=model_choices(session), menu=model_menu(session), selected=name,
        zip=str(archive), session=session,
        bleu=(f"Held-out BLEU ({held} sentence{'s' * (held != 1)}): base **{job.bleu_before:.1f}** → "
              f"fine-tuned **{bleu_after:.1f}**"))


def _new_name(base_model: str, session: Session) -> str:
    """base-ft1, base-ft2, ...: the first name this session does not use yet."""
    while True:
        session.fine_tunes += 1
        name = f"{base_model.rsplit('/', 1)[-1]}-ft{session.fine_tunes}"
        if name not in model_choices(session):
            return name


def _save(job: _Job, tuned: Translator, train_state: TrainState, bleu_after: float, session: Session) -> Path:
    """The fine-tuned checkpoint in the session's folder, with its model card."""
    info = dict(pairs=len(job.train), heldout=len(job.heldout), epochs=job.epochs, lr=job.lr, base=job.base_model,
                bleu_before=round(job.bleu_before, 2), bleu_after=round(bleu_after, 2))
    training = {"recipe": {"name": tuned.name, "corpus": "user pairs", "lr": job.lr, "max_epochs": job.epochs,
                           "batch_tokens": job.batch_tokens}, "state": asdict(train_state), "fine_tune": info}
    card = model_card(tuned.config, training, base_model=job.base_model, fine_tune=info)
    # fp16 storage halves the download; loading restores fp32 (the bundled checkpoints are stored the same way)
    return save_checkpoint(session.files() / tuned.name, tuned.model, tuned.source_tokenizer, tuned.target_tokenizer,
                           card=card, training=training, half=True)
