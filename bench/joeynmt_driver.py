"""JoeyNMT 2.3 side of the comparison. Runs inside JoeyNMT's own virtual environment
(bench/work/joeynmt-venv), never with the s2s package; bench/run.py starts it.

    train:  JoeyNMT's own training loop (joeynmt.training.train) for a wall-time budget; every
            update is timed by wrapping TrainManager._train_step, and when the budget is spent the
            wrapper raises KeyboardInterrupt, which is JoeyNMT's documented way to stop: it saves a
            checkpoint (latest.ckpt) and returns.
    decode: JoeyNMT's translation interface (TranslatorHubInterface.translate, the Python face of
            `joeynmt translate`) on a test set, one sentence per call and in batches of 64.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import latency_summary, peak_rss_mb, read_lines, seconds_since_process_start, write_json  # noqa: E402


def cmd_train(args) -> dict:
    import torch
    from joeynmt.config import load_config
    from joeynmt.helpers import make_model_dir
    from joeynmt.helpers_for_ddp import get_logger
    from joeynmt.training import TrainManager, train

    torch.set_num_threads(args.threads)
    cfg = load_config(Path(args.config))
    model_dir = Path(cfg["model_dir"])
    make_model_dir(model_dir, overwrite=True)
    shutil.copy2(args.config, model_dir / "config.yaml")  # what `joeynmt train` does; decode reads it
    get_logger("", log_file=(model_dir / "train.log").as_posix())

    ends: list[float] = []  # perf_counter at the end of each update's forward/backward
    tokens: list[int] = []  # target tokens of each update (padding excluded, </s> included)
    clock = {"start": None}
    original_step = TrainManager._train_step

    def timed_step(self, batch):
        now = time.perf_counter()
        if clock["start"] is None:
            clock["start"] = now
        elif now - clock["start"] >= args.budget_s:
            raise KeyboardInterrupt  # JoeyNMT saves latest.ckpt and stops
        result = original_step(self, batch)
        ends.append(time.perf_counter())
        tokens.append(int(batch.ntokens))
        return result

    TrainManager._train_step = timed_step
    started = time.perf_counter()
    train(rank=0, world_size=1, cfg=cfg, skip_test=True)
    total_s = time.perf_counter() - started

    done = len(ends)
    last = min(done, args.updates)  # the same window as ours: updates warmup+1 .. updates
    first = args.warmup if last > args.warmup else 1 if last > 1 else 0
    window = dict(measured_from_update=first, measured_updates=last - first)
    if last > first >= 1:
        seconds = ends[last - 1] - ends[first - 1]
        window.update(target_tokens_per_s=sum(tokens[first:last]) / seconds,
                      seconds_per_update=seconds / (last - first))
    whole = {}
    if done > args.warmup + 1:
        seconds = ends[-1] - ends[args.warmup - 1]
        whole = dict(budget_target_tokens_per_s=sum(tokens[args.warmup:]) / seconds)
    checkpoint = model_dir / "latest.ckpt"
    return dict(threads=torch.get_num_threads(), budget_s=args.budget_s, updates_done=done,
                mean_target_tokens_per_batch=sum(tokens) / done if done else None,
                checkpoint=str(checkpoint) if checkpoint.exists() else None,
                first_update_after_s=(clock["start"] - started) if clock["start"] else None,
                run_seconds=total_s, peak_rss_mb=peak_rss_mb(), **window, **whole)


def cmd_decode(args) -> dict:
    import sacrebleu
    import sentencepiece as spm
    import torch
    from joeynmt.config import load_config, parse_global_args
    from joeynmt.hub_interface import TranslatorHubInterface
    from joeynmt.prediction import prepare

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model_dir)
    cfg = load_config(model_dir / "config.yaml")
    cfg["testing"]["load_model"] = str(model_dir / "latest.ckpt")
    joey_args = parse_global_args(cfg, rank=0, mode="translate")
    model, _, _, stream = prepare(joey_args, rank=0, mode="translate")
    translator = TranslatorHubInterface(model, stream, joey_args)
    parameters = sum(p.numel() for p in model.parameters())
    logging.disable(logging.INFO)  # JoeyNMT logs several lines per call; keep that I/O out of the timings

    sources, refs = read_lines(args.sources), read_lines(args.refs)
    if args.sentences:
        sources, refs = sources[:args.sentences], refs[:args.sentences]
    target_sp = spm.SentencePieceProcessor(model_file=cfg["data"]["trg"]["tokenizer_cfg"]["model_file"])
    methods = {"greedy": dict(beam_size=1), f"beam{args.beam}": dict(beam_size=args.beam, beam_alpha=1.0)}
    result = dict(model_dir=str(model_dir), threads=torch.get_num_threads(), sentences=len(sources),
                  batch_size=args.batch_size, parameters=parameters,
                  max_output_length=cfg["testing"].get("max_output_length", -1), methods={})
    translator.translate([sources[0]], beam_size=1)
    result["process_start_to_first_translation_s"] = seconds_since_process_start()
    for options in methods.values():  # warm-up, as for ours
        for text in sources[:3]:
            translator.translate([text], **options)
    # batches of similar length, like s2s's translate_batch does (JoeyNMT itself would batch in file order)
    order = sorted(range(len(sources)), key=lambda i: len(sources[i].split()))
    for name, options in methods.items():
        times = []
        for text in sources:
            start = time.perf_counter()
            translator.translate([text], **options)
            times.append(time.perf_counter() - start)
        outputs = [""] * len(sources)
        start = time.perf_counter()
        for k in range(0, len(order), args.batch_size):
            chunk = order[k:k + args.batch_size]
            for i, text in zip(chunk, translator.translate([sources[i] for i in chunk], **options)):
                outputs[i] = text
        batched_s = time.perf_counter() - start
        pieces = [len(target_sp.encode(o)) for o in outputs]
        result["methods"][name] = dict(
            batch1=latency_summary(times), batched_seconds=batched_s,
            batched_sentences_per_s=len(sources) / batched_s, batched_pieces_per_s=sum(pieces) / batched_s,
            mean_output_pieces=sum(pieces) / len(pieces), bleu=sacrebleu.corpus_bleu(outputs, [refs]).score,
            sample=outputs[:3])
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--config", required=True)
    t.add_argument("--budget-s", type=float, required=True, help="wall time from the first update")
    t.add_argument("--updates", type=int, default=100, help="end of the measured window")
    t.add_argument("--warmup", type=int, default=10, help="updates left out of the rate")
    d = sub.add_parser("decode")
    d.add_argument("--model-dir", required=True)
    d.add_argument("--sources", required=True)
    d.add_argument("--refs", required=True)
    d.add_argument("--sentences", type=int, default=0)
    d.add_argument("--beam", type=int, default=5)
    d.add_argument("--batch-size", type=int, default=64)
    for p in (t, d):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = cmd_train(args) if args.command == "train" else cmd_decode(args)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
