"""Speed of the s2s package itself: decoding (batch 1 and batched) and training throughput.

Run by bench/run.py as a child process (so thread settings and peak memory belong to this
measurement alone); each subcommand writes one JSON file:

    python bench/ours.py decode --model checkpoints/en-de-multi30k --out decode.json
    python bench/ours.py train --config configs/en-de-multi30k.toml --model checkpoints/en-de-multi30k --out train.json
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

import sacrebleu
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MULTI30K, latency_summary, peak_rss_mb, seconds_since_process_start, write_json  # noqa: E402

from s2s import data as data_mod  # noqa: E402
from s2s.api import DecodeOptions, Translator  # noqa: E402


def decoding_methods(beam: int) -> dict[str, DecodeOptions]:
    return {"greedy": DecodeOptions(), f"beam{beam}": DecodeOptions(method="beam", beam_size=beam)}


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked; a no-op context otherwise."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def timed_calls(fn, items) -> tuple[list[float], list]:
    times, outputs = [], []
    for item in items:
        start = time.perf_counter()
        outputs.append(fn(item))
        times.append(time.perf_counter() - start)
    return times, outputs


def bench_decode(args) -> dict:
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model, device=args.device)
    pairs = data_mod.read_multi30k(args.data, args.test, translator.config.src_lang, translator.config.tgt_lang)
    if args.sentences:
        pairs = pairs[:args.sentences]
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    result = dict(model=str(args.model), device=str(translator.device), bf16=bool(args.bf16),
                  threads=torch.get_num_threads(), sentences=len(sources), test_set=args.test,
                  batch_size=args.batch_size, methods={})
    with autocast(translator.device, args.bf16):
        translator.translate(sources[0], DecodeOptions(), record_tree=False)
        result["process_start_to_first_translation_s"] = seconds_since_process_start()
        for options in decoding_methods(args.beam).values():  # warm-up: first calls allocate and pick kernels
            for text in sources[:3]:
                translator.translate(text, options, record_tree=False)
            translator.translate_batch(sources[:8], options, batch_size=args.batch_size)
        for name, options in decoding_methods(args.beam).items():
            # batch 1 through translate(): what the app calls (attention matrix, top-k candidates, n-best)
            trace_times, traces = timed_calls(lambda t: translator.translate(t, options, record_tree=False), sources)
            # batch 1 through translate_batch([text]): the bare search, no Trace built
            raw_times, _ = timed_calls(lambda t: translator.translate_batch([t], options), sources)
            start = time.perf_counter()
            outputs = translator.translate_batch(sources, options, batch_size=args.batch_size)
            batched_s = time.perf_counter() - start
            out_pieces = [len(translator.target_tokenizer.encode(o)) for o in outputs]
            result["methods"][name] = dict(
                batch1_trace=latency_summary(trace_times),
                batch1_raw=latency_summary(raw_times),
                batched_seconds=batched_s,
                batched_sentences_per_s=len(sources) / batched_s,
                batched_pieces_per_s=sum(out_pieces) / batched_s,
                mean_output_pieces=sum(out_pieces) / len(out_pieces),
                batch1_mean_output_pieces=sum(max(len(t.target_pieces) - 1, 0) for t in traces) / len(traces),
                bleu=sacrebleu.corpus_bleu(outputs, [refs]).score,
                sample=outputs[:3])
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def bench_train(args) -> dict:
    from s2s.tokenizer import Tokenizer
    from s2s.recipe import Recipe, build_config, load_splits
    from s2s.train import Trainer, encode_pairs, seed_everything, set_threads
    from s2s.model import Seq2Seq

    recipe = Recipe.load(args.config)
    recipe.threads = args.threads
    set_threads(recipe.threads)
    seed_everything(recipe.seed)
    device = torch.device(args.device)
    splits, _ = load_splits(recipe)
    # the checkpoint's tokenizers: the same subwords JoeyNMT is given, and no minute spent retraining them
    source = Tokenizer.load(Path(args.model) / "source.model")
    target = Tokenizer.load(Path(args.model) / "target.model")
    model = Seq2Seq(build_config(recipe, source, target))
    examples = encode_pairs(splits["train"], source, target, model.config.max_src_tokens)
    epoch_batches = list(data_mod.token_batches(examples, recipe.batch_tokens, seed=recipe.seed))
    val_sources, val_refs = data_mod.group_references(splits["val"][:8])

    marks: dict[int, tuple[float, int]] = {}
    cancel = threading.Event()
    trainer: Trainer | None = None

    def on_progress(p) -> None:
        if p.kind != "step":
            return
        marks[p.step] = (time.perf_counter(), trainer.state.target_tokens)
        if p.step >= args.updates:
            cancel.set()  # stops before the next batch; no evaluation, nothing saved

    trainer = Trainer(model, source, target, recipe, examples, val_sources, val_refs, device, on_progress, cancel)
    started = time.perf_counter()
    trainer.run()
    total_s = time.perf_counter() - started
    last = max(marks)
    first = args.warmup if args.warmup in marks and args.warmup < last else min(marks)
    (t0, tok0), (t1, tok1) = marks[first], marks[last]
    return dict(device=str(device), threads=torch.get_num_threads(), amp_bf16=trainer.use_amp,
                recipe=str(args.config), batch_tokens=recipe.batch_tokens,
                updates=last, measured_updates=last - first, measured_from_update=first,
                target_tokens_per_s=(tok1 - tok0) / (t1 - t0), seconds_per_update=(t1 - t0) / (last - first),
                mean_sentences_per_batch=len(examples) / len(epoch_batches),
                mean_target_tokens_per_batch=sum(b.n_tokens for b in epoch_batches) / len(epoch_batches),
                train_pairs=len(examples), parameters=sum(p.numel() for p in model.parameters()),
                run_seconds=total_s, peak_rss_mb=peak_rss_mb())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("decode", help="batch-1 latency and batched throughput on a Multi30k test set")
    d.add_argument("--model", required=True)
    d.add_argument("--data", default=str(MULTI30K))
    d.add_argument("--test", default="test_2016_flickr")
    d.add_argument("--sentences", type=int, default=0, help="first N sentences only (0 = all)")
    d.add_argument("--beam", type=int, default=5)
    d.add_argument("--batch-size", type=int, default=64)
    d.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    t = sub.add_parser("train", help="target tokens/s over a fixed number of updates")
    t.add_argument("--config", required=True)
    t.add_argument("--model", required=True, help="checkpoint whose SentencePiece models are reused")
    t.add_argument("--updates", type=int, default=100, help="a multiple of 10 (progress is reported every 10)")
    t.add_argument("--warmup", type=int, default=10, help="updates left out of the rate")
    for p in (d, t):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--device", default="cpu")
        p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "train" and (args.updates % 10 or args.updates <= args.warmup):
        parser.error("--updates must be a multiple of 10 and larger than --warmup")
    result = bench_decode(args) if args.command == "decode" else bench_train(args)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
