"""Speed of the s2s package itself: decoding (batch 1 and batched) and training throughput.

Run by bench/run.py as a child process (so thread settings and peak memory belong to this
measurement alone); each subcommand writes one JSON file:

    python bench/ours.py decode --model checkpoints/en-de-multi30k --out decode.json
    python bench/ours.py train --config configs/en-de-multi30k.toml --model checkpoints/en-de-multi30k --out train.json
    python bench/ours.py step --model checkpoints/en-de-multi30k --out step.json
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
from common import (MULTI30K, cpu_bf16, latency_summary, peak_rss_mb, seconds_since_process_start,  # noqa: E402
                    write_json)

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


def memory_bandwidth_gbs(megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s of a large tensor copy (read + write), the best of `repeats`: what bounds a step whose weights do not
    stay in cache."""
    a = torch.ones(megabytes * 2**20 // 4)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - start)
    return 2 * a.numel() * 4 / best / 1e9


def step_probe(translator: Translator, text: str, calls: int = 300) -> dict:
    """One batch-1 `model.step` (greedy's case), timed alone: ms per step, and the bytes of weights it reads (the
    decoder RNN, W_c and the vocabulary projection W_s; int8 where quantized) beside the time reading them takes
    at the measured copy bandwidth, the step's memory-bound limit."""
    model = translator.model
    with torch.inference_mode():
        src = torch.tensor([translator.encode_source(text)[0]], device=translator.device)
        memory, state = model.encode(src, torch.tensor([src.size(1)]))
        y = torch.tensor([translator.config.bos_id], device=translator.device)
        for _ in range(20):
            model.step(y, state, memory)
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            model.step(y, state, memory)
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / calls
    weights = 0
    for name, module in (("rnn", model.rnn), ("W_c", model.W_c), ("W_s", model.W_s)):
        if isinstance(module, torch.nn.Module) and any(True for _ in module.parameters()):
            weights += sum(p.numel() * p.element_size() for p in module.parameters())
        else:  # a dynamically quantized Linear: int8 weights, fp32 bias
            weight, bias = module._packed_params._weight_bias()
            weights += weight.numel() + (bias.numel() * 4 if bias is not None else 0)
    bandwidth = memory_bandwidth_gbs() if translator.device.type == "cpu" else None
    return dict(ms_per_step=seconds * 1e3, source_pieces=src.size(1), weight_mb_per_step=weights / 1e6,
                copy_bandwidth_gbs=bandwidth,
                memory_bound_ms_per_step=weights / (bandwidth * 1e9) * 1e3 if bandwidth else None)


def bench_decode(args) -> dict:
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model, device=args.device, quantize=args.quantize)
    pairs = data_mod.read_multi30k(args.data, args.test, translator.config.src_lang, translator.config.tgt_lang)
    if args.sentences:
        pairs = pairs[:args.sentences]
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    result = dict(model=str(args.model), device=str(translator.device), bf16=bool(args.bf16), int8=args.quantize,
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
    with autocast(translator.device, args.bf16):
        result["step"] = step_probe(translator, sources[0])
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def gemm_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of one n×n by n×n torch.mm (2n³ FLOPs), the best of `repeats` after a warm-up: the machine's
    matrix-product peak that a training update is measured against."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    best = float("inf")
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def train_flops(config, batches) -> float:
    """Training FLOPs per real target token, counted from the model's matrix products on the real (unpadded)
    tokens of these batches: forward 2·MACs, backward twice the forward. Per source token: the bi-LSTM and the
    attention keys; per target token: the decoder LSTM, the scores and context over its sentence's source,
    W_c and the vocabulary projection. Padding is left out, so this is what the model needs, not what ran."""
    c = config
    rnn = 4 if c.rnn == "lstm" else 3
    directions = 2 if c.bidirectional else 1
    per_src = directions * rnn * c.encoder_hidden_size * (c.emb_size + c.encoder_hidden_size) * c.num_layers \
        + c.memory_size * c.hidden_size * (c.attention != "dot")
    feed = c.attentional_size if c.input_feeding else 0
    per_tgt = rnn * c.hidden_size * (c.emb_size + feed + c.hidden_size) * c.num_layers \
        + (c.memory_size + c.hidden_size) * c.attentional_size + c.attentional_size * c.tgt_vocab_size
    macs = tokens = 0
    for batch in batches:
        src_len = batch.src_lengths.tolist()
        tgt_len = (batch.tgt_out != c.pad_id).sum(1).tolist()
        for s, t in zip(src_len, tgt_len):
            macs += s * per_src + t * (per_tgt + s * (c.hidden_size + c.memory_size))
            tokens += t
    return 3 * 2 * macs / max(tokens, 1)


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
    bf16_flags = cpu_bf16() if device.type == "cpu" else ""
    if args.bf16:  # the trainer uses bf16 autocast on CUDA by itself; on a CPU only where the CPU has bf16
        if device.type == "cpu" and not bf16_flags:
            raise SystemExit("--bf16 on this CPU: it has neither AVX512-BF16 nor AMX, bf16 would be emulated")
        trainer.use_amp = True
    peak = gemm_peak(device)
    peak_bf16 = gemm_peak(device, torch.bfloat16) if trainer.use_amp else None
    flops_per_token = train_flops(model.config, epoch_batches)
    started = time.perf_counter()
    trainer.run()
    total_s = time.perf_counter() - started
    last = max(marks)
    first = args.warmup if args.warmup in marks and args.warmup < last else min(marks)
    (t0, tok0), (t1, tok1) = marks[first], marks[last]
    tokens_per_s = (tok1 - tok0) / (t1 - t0)
    return dict(device=str(device), threads=torch.get_num_threads(), amp_bf16=trainer.use_amp,
                cpu_bf16_flags=bf16_flags, gemm_fp32_gflops=peak, gemm_bf16_gflops=peak_bf16,
                train_flops_per_target_token=flops_per_token, train_gflops=tokens_per_s * flops_per_token / 1e9,
                train_fraction_of_gemm_peak=tokens_per_s * flops_per_token / 1e9 / (peak_bf16 or peak),
                recipe=str(args.config), batch_tokens=recipe.batch_tokens,
                updates=last, measured_updates=last - first, measured_from_update=first,
                target_tokens_per_s=tokens_per_s, seconds_per_update=(t1 - t0) / (last - first),
                mean_sentences_per_batch=len(examples) / len(epoch_batches),
                mean_target_tokens_per_batch=sum(b.n_tokens for b in epoch_batches) / len(epoch_batches),
                train_pairs=len(examples), parameters=sum(p.numel() for p in model.parameters()),
                run_seconds=total_s, peak_rss_mb=peak_rss_mb())


def bench_step(args) -> dict:
    """The Step tab's server time per click: the service call the app makes (decoding and the three figures),
    then what Gradio does with the figures before sending them (postprocess to JSON), on sentences of
    `--words` words. Also counts `model.step` calls per click: Next should decode nothing new."""
    import json
    import os
    import statistics

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the service takes a GPU when it sees one (CUDA starts lazily)
    torch.set_num_threads(args.threads)
    model_dir = Path(args.model).resolve()
    os.environ["S2S_CHECKPOINTS"] = str(model_dir.parent)  # the service finds models by folder name
    from gradio.components import Plot

    from s2s import service
    from s2s.model import Seq2Seq

    calls = [0]
    original = Seq2Seq.step

    def counting_step(self, *a, **k):
        calls[0] += 1
        return original(self, *a, **k)

    Seq2Seq.step = counting_step
    pairs = data_mod.read_multi30k(args.data, args.test)
    sentences = [s for s, _ in pairs if len(s.split()) == args.words][:args.sentences]
    name, session = model_dir.name, service.Session()
    plot = Plot()
    times: dict[str, list[float]] = {k: [] for k in ("start", "next", "force", "back", "run", "next_json")}
    steps: dict[str, list[int]] = {k: [] for k in ("start", "next", "force", "back", "run")}

    def click(kind: str, fn, *a) -> dict:
        calls[0] = 0
        start = time.perf_counter()
        view = fn(*a, session)
        times[kind].append(time.perf_counter() - start)
        steps[kind].append(calls[0])
        if kind == "next":
            start = time.perf_counter()  # what Gradio does with the view's figures before sending them
            json.dumps([plot.postprocess(view[k]).model_dump() for k in ("candidates", "step_attention", "heatmap")])
            times["next_json"].append(time.perf_counter() - start)
        return view

    service.step_start(name, sentences[0], session)  # warm-up: loads the model
    for text in sentences:
        view = click("start", service.step_start, name, text)
        while not view["state"]["done"]:
            n = len(view["state"]["target_ids"])
            if n == 3 and len(view["choices"]) > 1:  # what if: the second candidate, then undo it
                forced = click("force", service.step_force, view["state"], view["choices"][1][1])
                click("back", service.step_back, forced["state"])
            view = click("next", service.step_next, view["state"])
        click("run", service.step_run, click("back", service.step_back, view["state"])["state"])
    Seq2Seq.step = original
    next_total = [a + b for a, b in zip(times["next"], times["next_json"])]
    return dict(model=str(args.model), threads=torch.get_num_threads(), words=args.words, sentences=len(sentences),
                clicks={k: dict(latency_summary(v), steps_per_click=statistics.mean(steps[k]) if k in steps else None)
                        for k, v in times.items()},
                next_with_json=latency_summary(next_total), peak_rss_mb=peak_rss_mb())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("decode", help="batch-1 latency and batched throughput on a Multi30k test set")
    st = sub.add_parser("step", help="the Step tab's server time per click (service call and figure JSON)")
    for p in (d, st):  # both read sentences of a Multi30k test set
        p.add_argument("--model", required=True)
        p.add_argument("--data", default=str(MULTI30K))
        p.add_argument("--test", default="test_2016_flickr")
    d.add_argument("--sentences", type=int, default=0, help="first N sentences only (0 = all)")
    d.add_argument("--beam", type=int, default=5)
    d.add_argument("--batch-size", type=int, default=64)
    d.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    d.add_argument("--quantize", action="store_true", help="int8 Linear weights (CPU; s2s.api.quantize_int8)")
    t = sub.add_parser("train", help="target tokens/s over a fixed number of updates")
    t.add_argument("--config", required=True)
    t.add_argument("--model", required=True, help="checkpoint whose SentencePiece models are reused")
    t.add_argument("--updates", type=int, default=100, help="a multiple of 10 (progress is reported every 10)")
    t.add_argument("--warmup", type=int, default=10, help="updates left out of the rate")
    t.add_argument("--bf16", action="store_true", help="bf16 autocast (automatic on CUDA; on a CPU only with "
                   "AVX512-BF16 or AMX, refused otherwise)")
    st.add_argument("--words", type=int, default=15, help="sentences of exactly this many words")
    st.add_argument("--sentences", type=int, default=20)
    for p in (d, t, st):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--device", default="cpu")
        p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "train" and (args.updates % 10 or args.updates <= args.warmup):
        parser.error("--updates must be a multiple of 10 and larger than --warmup")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    result = dict(decode=bench_decode, train=bench_train, step=bench_step)[args.command](args)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
