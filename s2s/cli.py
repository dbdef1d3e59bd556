"""`s2s train | translate | evaluate | push | data`."""
from __future__ import annotations

import argparse
import codecs
import json
import math
import os
import sys
import threading
from pathlib import Path

from . import distributed
from .api import DecodeOptions, Translator
from .files import atomic_write
from .recipe import Recipe


def load_translator(spec: str, device: str = "auto", revision: str | None = None,
                    quantize: bool = False) -> Translator:
    """A local checkpoint folder, or a Hub repo id (user/repo or https://huggingface.co/user/repo).
    quantize: int8 Linear weights for CPU serving (api.quantize_int8)."""
    if Path(spec).is_dir():
        return Translator.load(spec, device=device, quantize=quantize)
    from .api import quantize_int8
    from .hub import load
    translator = load(spec, revision=revision, device=device)
    if quantize:
        translator.model = quantize_int8(translator.model)
    return translator


def _options(args) -> DecodeOptions:
    if args.sample:
        return DecodeOptions(method="sample", temperature=args.temperature, top_k=args.top_k,
                             top_p=args.top_p, seed=args.seed)
    if args.beam and args.beam > 1:
        return DecodeOptions(method="beam", beam_size=args.beam, length_penalty=args.length_penalty,
                             nbest=args.nbest, reverse_weight=args.reverse_weight)
    return DecodeOptions()


def read_lines(path: str | None) -> list[str]:
    """Lines of a file (or stdin when path is None) as UTF-8. Invalid bytes become U+FFFD, and a note on
    stderr says how many there were, instead of aborting the run."""
    data = Path(path).read_bytes() if path else sys.stdin.buffer.read()
    data = data.removeprefix(codecs.BOM_UTF8)
    text = data.decode("utf-8", errors="replace")
    invalid = len(data) - len(data.decode("utf-8", errors="ignore").encode("utf-8"))
    if invalid:
        name = Path(path).name if path else "stdin"
        print(f"s2s translate: note: {invalid} byte{'s' * (invalid != 1)} of {name} "
              f"{'were' if invalid != 1 else 'was'} not valid UTF-8 and became U+FFFD", file=sys.stderr)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the newline ending the last line
        lines.pop()
    return lines


def cmd_translate(args) -> int:
    options = _options(args)
    options.validate()
    if args.by_sentence and (args.json or args.nbest > 1):
        raise ValueError("--by-sentence writes one joined translation per line: it does not go with --json or --nbest")
    translator = load_translator(args.model, args.device, args.revision)
    lines = read_lines(args.input)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.json or (options.method == "beam" and args.nbest > 1):
            for line in lines:
                trace = translator.translate(line, options, record_tree=False)
                if args.json:
                    out.write(trace.to_json() + "\n")
                else:
                    out.write("\t".join(f"{h.text}\t{h.score:.4f}" for h in trace.nbest) + "\n")
        else:
            for text in translator.translate_batch(lines, options, batch_size=args.batch_size,
                                                   by_sentence=args.by_sentence):
                out.write(text + "\n")
    finally:
        if args.output:
            out.close()
    return 0


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .train import train_from_recipe  # training's dependencies load only for `s2s train`

    if args.restart_lr is not None and args.init_from is None:
        raise ValueError("--restart-lr sets the learning rate of --init-from; give both")
    recipe = Recipe.load(args.config)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints and logs
    if args.max_minutes is not None:
        recipe.max_minutes = args.max_minutes
    if args.max_steps is not None:
        recipe.max_steps = args.max_steps
    if args.threads is not None:
        recipe.threads = args.threads
    if args.keep_saves:
        recipe.keep_saves = True
    bar = tqdm(unit="upd", dynamic_ncols=True, disable=args.quiet or not main_rank)
    log = open(args.log, "a", encoding="utf-8") if args.log and main_rank else None

    def on_progress(p) -> None:
        if p.kind == "step":
            bar.update(p.step - bar.n)
            bar.set_postfix(epoch=p.epoch, loss=f"{p.loss:.3f}", tok_s=f"{p.tokens_per_s:,.0f}", lr=f"{p.lr:.1e}")
        elif p.kind == "eval":
            bar.write(f"step {p.step} epoch {p.epoch}: val BLEU {p.val_bleu:.2f} val loss {p.val_loss:.3f} "
                      f"(best {p.best_bleu:.2f}) {p.elapsed_s / 60:.1f} min")
        if log:  # NaN (a value not measured at this step) is not JSON: null
            record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in vars(p).items()}
            log.write(json.dumps(record, allow_nan=False) + "\n")
            log.flush()

    cancel = threading.Event()
    try:  # Ctrl-C or SIGTERM: finish the update, save the resume state, leave (all ranks together)
        with distributed.stop_signals_set(cancel):
            out = train_from_recipe(recipe, on_progress, cancel, resume=args.resume, device=args.device,
                                    output=args.output, data=args.data, init_from=args.init_from,
                                    restart_lr=args.restart_lr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    bar.close()
    if log:
        log.close()
    if cancel.is_set() and main_rank:
        print(f"stopped; continue with --resume (state in {Path(out).name}.resume)", file=sys.stderr)
    elif main_rank:
        print(f"best checkpoint: {out}")
    return 0


def cmd_data(args) -> int:
    from . import datasets

    if args.action == "list":
        print("\n".join(datasets.describe(args.data)))
        return 0
    for name in args.names:
        datasets.get(name, args.dir, mirror=args.mirror or os.environ.get("S2S_DATA_MIRROR"),
                     progress=not args.quiet)
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate, test_pairs, update_card_metrics

    translator = load_translator(args.model, args.device, quantize=args.quantize)
    recipe = None
    training_file = Path(args.model) / "training.json"
    if training_file.is_file():  # the split a model was trained with decides what its test set is
        saved = json.loads(training_file.read_text(encoding="utf-8")).get("recipe")
        recipe = Recipe(**saved) if saved else None
    results = {}
    for test in args.test:
        sources, refs = test_pairs(test, translator, args.data, recipe)
        for beam in args.beam:
            options = (DecodeOptions(method="beam", beam_size=beam, length_penalty=args.length_penalty,
                                     reverse_weight=args.reverse_weight) if beam > 1 else DecodeOptions())
            result = evaluate(translator, sources, refs, options, batch_size=args.batch_size,
                              by_sentence=args.by_sentence)
            result["test_set"] = test
            results[f"{test}/{result['decoding']}"] = result
            print(f"{test:18s} {result['decoding']:8s} BLEU {result['bleu']:5.2f}  chrF {result['chrf']:5.2f}  "
                  f"({result['seconds']:.1f} s)", flush=True)
    print(next(iter(results.values()))["signature"])
    if args.json:
        atomic_write(args.json, json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "hypotheses"}
                                            for k, v in results.items()}, indent=2) + "\n")
    if args.update_card:
        update_card_metrics(args.model, results)
    return 0


def cmd_push(args) -> int:
    from .hub import push

    # The token defaults to HF_TOKEN or the saved `hf auth login` token inside push; it is never printed.
    url = push(args.model, args.repo_id, token=args.token, private=args.private, commit_message=args.message,
               base_model=args.base_model)
    print(url)
    return 0


def cmd_average(args) -> int:
    from .checkpoint import average_checkpoints

    print(average_checkpoints(args.models, args.output, half=args.half))
    return 0


REVERSE_WEIGHT_HELP = ("beam: weight λ of the reverse model's log p(source | translation) when it reranks the beam "
                       "(default: the model's own; 0 = no reranking)")
MAX_BATCH_SIZE = 1024
MAX_MINUTES = 7 * 24 * 60
MAX_STEPS = 10**9
MAX_THREADS = 1024


def bounded(kind: type, low: float, high: float, label: str):
    """An argparse type: an int (or finite float) in [low, high], or a message naming the range."""
    noun, shown = ("an integer", f"{low} to {high}") if kind is int else ("a number", f"{low:g} to {high:g}")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"{label} must be {noun} from {shown}, got {text[:40]!r}")
        return value
    return parse


def decode_option(name: str):
    """An argparse type for a DecodeOptions field, with the range its validate() enforces."""
    low, high = DecodeOptions.RANGES[name]
    return bounded(float if isinstance(low, float) else int, low, high, DecodeOptions.LABELS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description="LSTM encoder-decoder translation that shows its work")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("translate", help="translate lines from stdin or --input")
    t.add_argument("--model", required=True, help="checkpoint folder or Hub repo id")
    t.add_argument("--revision", help="Hub branch, tag or commit")
    t.add_argument("--input", help="file of sentences, one per line (default: stdin)")
    t.add_argument("--output", help="write here instead of stdout")
    t.add_argument("--beam", type=decode_option("beam_size"), default=1, help="beam width (1 = greedy)")
    t.add_argument("--length-penalty", type=decode_option("length_penalty"),
                   help="beam length penalty α (default: the model's own)")
    t.add_argument("--reverse-weight", type=decode_option("reverse_weight"),
                   help=REVERSE_WEIGHT_HELP)
    t.add_argument("--nbest", type=decode_option("nbest"), default=1,
                   help="print the n best (tab-separated text and score)")
    t.add_argument("--sample", action="store_true", help="sample instead of searching")
    t.add_argument("--temperature", type=decode_option("temperature"), default=1.0)
    t.add_argument("--top-k", type=decode_option("top_k"), default=0, help="0 = no top-k cut")
    t.add_argument("--top-p", type=decode_option("top_p"), default=1.0)
    t.add_argument("--seed", type=decode_option("seed"))
    t.add_argument("--batch-size", type=bounded(int, 1, MAX_BATCH_SIZE, "batch size"), default=64)
    t.add_argument("--json", action="store_true", help="one JSON trace (with attention) per line")
    t.add_argument("--by-sentence", action="store_true",
                   help="translate each sentence of a line on its own and join them, as the app does")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda")
    t.set_defaults(func=cmd_translate)

    tr = sub.add_parser("train", help="train from a recipe in configs/")
    tr.add_argument("--config", required=True)
    tr.add_argument("--output", help="checkpoint folder (default: the recipe's output)")
    start = tr.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from OUTPUT.resume")
    start.add_argument("--init-from", metavar="CHECKPOINT",
                    help="continue from a checkpoint of this recipe when OUTPUT.resume is gone (weights, "
                    "tokenizers and counters; Adam restarts at the last learning rate, or --restart-lr)")
    tr.add_argument("--restart-lr", type=bounded(float, 1e-7, 1.0, "restart learning rate"),
                    help="with --init-from: Adam's learning rate there (default: the last of the history)")
    tr.add_argument("--keep-saves", action="store_true",
                    help="keep the weights of every evaluation in OUTPUT.saves/step-N, to average the last few")
    tr.add_argument("--max-minutes", type=bounded(float, 0.0, MAX_MINUTES, "time limit"),
                    help="training minutes of the whole run, counted across --resume and --init-from (0 = no limit)")
    tr.add_argument("--max-steps", type=bounded(int, 0, MAX_STEPS, "update limit"),
                    help="updates of the whole run, counted across --resume and --init-from (0 = no limit)")
    tr.add_argument("--threads", type=bounded(int, 0, MAX_THREADS, "thread count"),
                    help="CPU threads (default: the recipe's; 0 = all cores)")
    tr.add_argument("--data", help="a data folder searched first for the recipe's corpora (what `s2s data get "
                    "--dir` wrote); then $S2S_DATA, the user cache, ../shared/data")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--log", "--log-file", dest="log",
                    help="append progress as JSON lines here (under torchrun spell it --log-file: torchrun "
                    "reads --log as its own --log-dir)")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="BLEU and chrF with sacreBLEU")
    e.add_argument("--model", required=True)
    e.add_argument("--test", nargs="+", default=["test_2016_flickr"],
                   help="test_2016_flickr test_2017_flickr test_2017_mscoco val tatoeba-test tatoeba-val everyday "
                        "or a file")
    e.add_argument("--data", help="Multi30k folder or Tatoeba file (default ../shared/data/...)")
    e.add_argument("--beam", type=decode_option("beam_size"), nargs="+", default=[5], help="beam widths (1 = greedy)")
    e.add_argument("--length-penalty", type=decode_option("length_penalty"),
                   help="beam length penalty α (default: the model's own)")
    e.add_argument("--reverse-weight", type=decode_option("reverse_weight"),
                   help=REVERSE_WEIGHT_HELP)
    e.add_argument("--batch-size", type=bounded(int, 1, MAX_BATCH_SIZE, "batch size"), default=64)
    e.add_argument("--json", help="write the scores here")
    e.add_argument("--update-card", action="store_true", help="write the scores into the model card")
    e.add_argument("--by-sentence", action="store_true", help="translate each sentence of a line on its own and "
                   "join them, as the app translates a paragraph (scored as 'DECODING, by sentence')")
    e.add_argument("--device", default="auto")
    e.add_argument("--quantize", action="store_true", help="int8 Linear weights, to measure what CPU serving in "
                   "int8 would cost in BLEU (not used by the app: see bench/README.md)")
    e.set_defaults(func=cmd_evaluate)

    a = sub.add_parser("average", help="average the weights of several saves of one training run")
    a.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint folders (same architecture, same tokenizers)")
    a.add_argument("--output", required=True, help="the averaged checkpoint folder (written atomically)")
    a.add_argument("--half", action="store_true", help="store fp16 weights, as the bundled models do")
    a.set_defaults(func=cmd_average)

    p = sub.add_parser("push", help="upload a checkpoint folder to the Hub with a model card")
    p.add_argument("model", help="checkpoint folder")
    p.add_argument("repo_id")
    p.add_argument("--token", help="default: $HF_TOKEN")
    p.add_argument("--private", action="store_true", help="create the repo private (a new repo only)")
    p.add_argument("--message", help="commit message")
    p.add_argument("--base-model", help="Hub repo id this checkpoint was fine-tuned from (default: training.json)")
    p.set_defaults(func=cmd_push)

    da = sub.add_parser("data", help="download the corpora the recipes name (s2s data get multi30k)")
    da_sub = da.add_subparsers(dest="action", required=True)
    get = da_sub.add_parser("get", help="download, check (SHA-256) and unpack corpora; resumes a broken download")
    get.add_argument("names", nargs="+", metavar="NAME", help="multi30k, tatoeba-eng-deu, tatoeba-eng-fra")
    get.add_argument("--dir", help="data folder to fill (default: $S2S_DATA, else the user cache folder)")
    get.add_argument("--mirror", help="fetch from MIRROR/<folder>/<file> instead (default: $S2S_DATA_MIRROR)")
    get.add_argument("--quiet", action="store_true", help="no progress bars")
    ls = da_sub.add_parser("list", help="the corpora and where each is found")
    ls.add_argument("--data", help="a data folder searched first")
    da.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        print(f"s2s {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
