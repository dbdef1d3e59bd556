"""sacreBLEU (13a, detokenised) and chrF on a test set, greedy and beam; JSON with the exact signature."""
from __future__ import annotations

import time
from pathlib import Path

import sacrebleu

from . import data as data_mod
from . import datasets
from .api import DecodeOptions, Translator
from .card import refresh_card
from .recipe import Recipe, find_data

MULTI30K_TESTS = ("test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "val")
# Hand-written everyday sentences (bench/data/everyday.{en,de,fr}): never used for training or tuning.
EVERYDAY_DIR = Path(__file__).resolve().parent.parent / "bench" / "data"
TATOEBA_DATASETS = {"de": "tatoeba-eng-deu", "fr": "tatoeba-eng-fra"}  # s2s.datasets names


def read_everyday(src_lang: str, tgt_lang: str, folder: str | Path = EVERYDAY_DIR) -> list[tuple[str, str]]:
    paths = [Path(folder) / f"everyday.{lang}" for lang in (src_lang, tgt_lang)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise data_mod.DataError(f"everyday test set not found: {', '.join(missing)}")
    src, tgt = (p.read_text(encoding="utf-8").splitlines() for p in paths)
    if len(src) != len(tgt):
        raise data_mod.DataError(f"{paths[0].name} has {len(src)} lines but {paths[1].name} has {len(tgt)}")
    return list(zip(src, tgt))


def tatoeba_split(split: str, src_lang: str, tgt_lang: str, data_path: str | None, recipe: Recipe | None
                  ) -> list[tuple[str, str]]:
    """The Tatoeba val/test split a model was trained with (its recipe's file, seed and sizes)."""
    r = recipe if recipe is not None and recipe.corpus in ("tatoeba", "mixed") else Recipe(corpus="tatoeba")
    other = tgt_lang if src_lang == "en" else src_lang
    path = data_path
    if not path:  # the recipe's corpus, by name or path, found like `s2s train` finds it (s2s.datasets)
        name = r.tatoeba_dataset if r.corpus == "mixed" else r.dataset
        given = (r.tatoeba_path if r.corpus == "mixed" else
                 r.data_path if r.data_path.endswith((".tsv", ".gz")) else "")
        path = find_data(name or ("" if given else TATOEBA_DATASETS.get(other, "tatoeba-eng-fra")), given)
    splits = data_mod.split_by_source(data_mod.read_tatoeba(path, src_lang), r.n_val, r.n_test, r.split_seed)
    return splits[split]


def test_pairs(test: str, translator: Translator, data_dir: str | None = None,
               recipe: Recipe | None = None) -> tuple[list[str], list[list[str]]]:
    """Resolve a test-set name (Multi30k split, `tatoeba-test`/`tatoeba-val`, `everyday`, or a TSV/CSV path)."""
    cfg = translator.config
    if test in MULTI30K_TESTS:
        pairs = data_mod.read_multi30k(data_dir or datasets.locate("multi30k"), test, cfg.src_lang, cfg.tgt_lang)
    elif test in ("tatoeba-test", "tatoeba-val"):
        pairs = tatoeba_split(test.split("-", 1)[1], cfg.src_lang, cfg.tgt_lang, data_dir, recipe)
    elif test == "everyday":
        pairs = read_everyday(cfg.src_lang, cfg.tgt_lang, data_dir or EVERYDAY_DIR)
    else:
        pairs, _ = data_mod.read_user_pairs(test)
    pairs = [(data_mod.normalize(s), data_mod.normalize(t)) for s, t in pairs]
    return data_mod.group_references(pairs)


def evaluate(translator: Translator, sources: list[str], references: list[list[str]], options: DecodeOptions,
             batch_size: int = 64, by_sentence: bool = False) -> dict:
    """by_sentence: translate each sentence of a line on its own, as the app does (`split_sentences`)."""
    started = time.perf_counter()
    hyps = translator.translate_batch(sources, options, batch_size=batch_size, by_sentence=by_sentence)
    seconds = time.perf_counter() - started
    streams = reference_streams(references)
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu = bleu_metric.corpus_score(hyps, streams)  # one scoring pass gives the score and its signature
    chrf = chrf_metric.corpus_score(hyps, streams)
    weight = translator.reverse_weight(options)
    decoding = ("greedy" if options.method == "greedy" else f"beam {options.beam_size}") + (
        f", reranked by {translator.reverse.name}" if weight else "") + (", by sentence" if by_sentence else "")
    reranking = dict(reverse_model=translator.reverse.name, reverse_weight=weight) if weight else {}
    return dict(bleu=bleu.score, chrf=chrf.score, decoding=decoding, sentences=len(sources),
                signature=str(bleu_metric.get_signature()), chrf_signature=str(chrf_metric.get_signature()),
                length_penalty=(translator.config.length_penalty if options.length_penalty is None
                                else options.length_penalty) if options.method == "beam" else None,
                **reranking, seconds=round(seconds, 2), hypotheses=hyps)


def update_card_metrics(folder: str | Path, results: dict[str, dict]) -> None:
    """Merge results into the checkpoint's metrics.json and regenerate its model card."""
    refresh_card(folder, metrics_update={key: {k: v for k, v in value.items() if k != "hypotheses"}
                                         for key, value in results.items()})


def reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """Per-hypothesis reference lists -> sacreBLEU's streams (None where a sentence has fewer references)."""
    width = max(len(r) for r in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def corpus_bleu(hypotheses: list[str], references: list[list[str]]) -> sacrebleu.metrics.bleu.BLEUScore:
    """references: per hypothesis a list of references (any number)."""
    return sacrebleu.corpus_bleu(hypotheses, reference_streams(references))
