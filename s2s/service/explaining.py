"""The Explain tab: attribution beside attention, the score of a given translation, state trajectories and
the three attention scores side by side (issue 14)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import explain, explain_plots, plots, trajectories
from ..api import DecodeOptions, Translator
from ..attention import SCORES
from ..tokenizer import readable_text
from .common import UserError, check_text, code, gpu, md, number
from .models import Session, _local_models, get_translator

MAX_SOURCE_PIECES = 60  # attribution costs ~ source × target × steps; a 20 × 20 sentence takes about a second
MAX_TARGET_PIECES = 80
STEPS_RANGE = (4, 64)
METHODS = {"integrated gradients": "integrated", "gradient × input": "gradient_input"}
SCORE_KINDS = tuple(SCORES)  # general, dot, additive
SCORE_MODELS = {kind: f"en-de-{kind}" for kind in SCORE_KINDS}  # bundled folders trained by configs/en-de-*.toml
SCORE_EQUATIONS = {kind: equation for kind, (equation, _) in SCORES.items()}
METRIC_SETS = (("everyday", "everyday"), ("test_2016_flickr", "Multi30k test 2016"))


# ---------------------------------------------------------------------- attribution and scoring
@gpu()
def explain_translation(model: str, text: str, translation: str | None = "", steps: Any = explain.DEFAULT_STEPS,
                        method: str = "integrated gradients", merge_words: bool = False,
                        session: Session | None = None) -> dict:
    """Attention and attribution of one translation: the model's own (greedy) when `translation` is empty,
    else the one given, scored piece by piece. Returns "result" (plain data, kept by the app), the views
    (`explain_views`) and "translation" (the text explained)."""
    text = check_text(text)
    steps = number(steps, "Integrated-gradients steps", int, *STEPS_RANGE)
    method_key(method)
    translator = get_translator(model, session)
    source_ids, notice = translator.encode_source(text)
    if len(source_ids) > MAX_SOURCE_PIECES:
        raise UserError(f"The sentence has {len(source_ids)} pieces; Explain handles up to {MAX_SOURCE_PIECES} "
                        "(attribution costs grow with source × target length). Try a shorter sentence.")
    given = (translation or "").strip()
    if len(given) > 2000:
        raise UserError("The translation to score is too long; paste one sentence.")
    target_ids = (translator.target_tokenizer.encode(given) + [translator.config.eos_id] if given
                  else explain.greedy_ids(translator.model, source_ids))
    if len(target_ids) > MAX_TARGET_PIECES:
        raise UserError(f"The translation has {len(target_ids)} pieces; Explain handles up to {MAX_TARGET_PIECES}.")
    started = time.perf_counter()
    a = explain.attribute(translator.model, source_ids, target_ids, steps)
    pieces = translator.target_tokenizer.pieces
    result = dict(
        model=model, source=text, source_pieces=translator.source_tokenizer.pieces(source_ids),
        target_pieces=pieces(a.target_ids), translation=readable_text(pieces(a.target_ids)), given=bool(given),
        step_logprobs=a.step_logprobs.tolist(), greedy_pieces=pieces([int(i) for i in a.greedy_ids]),
        greedy_logprobs=a.greedy_logprobs.tolist(), alpha=a.alpha.tolist(), integrated=a.integrated.tolist(),
        gradient_input=a.gradient_input.tolist(), integrated_raw=a.integrated_raw.tolist(),
        baseline_logprobs=a.baseline_logprobs.tolist(), completeness_error=a.completeness_error.tolist(),
        steps=a.steps, seconds=round(time.perf_counter() - started, 3), notice=notice)
    return dict(result=result, translation=result["translation"], **explain_views(result, method, merge_words))


def method_key(method: str | None) -> str:
    key = METHODS.get((method or "integrated gradients").strip().lower())
    if key is None:
        raise UserError(f"Attribution must be one of {', '.join(METHODS)}, not {method!r}.")
    return key


def explain_views(result: dict | None, method: str = "integrated gradients", merge_words: bool = False) -> dict:
    """The figures, table and summary of an explained translation, per piece or per word (no recomputing:
    the method and merge switches)."""
    if not result or not result.get("alpha"):
        raise UserError("Nothing explained yet: press Explain first.")
    key, merge = method_key(method), bool(merge_words)
    src, tgt = result["source_pieces"], result["target_pieces"]
    alpha = explain.map_view(np.array(result["alpha"]), src, tgt, merge)
    attribution = explain.map_view(np.array(result[key]), src, tgt, merge)
    agree = explain.agreement(alpha.matrix, attribution.matrix)
    other = "gradient_input" if key == "integrated" else "integrated"
    second = explain.compare(np.array(result["alpha"]), np.array(result[other]), src, tgt, merge)
    name = {v: k for k, v in METHODS.items()}
    unit = "words" if merge else "pieces"
    rows = [[t, alpha.source_labels[int(a_row.argmax())], attribution.source_labels[int(b_row.argmax())],
             "✓" if same else "✗", round(js, 3)]
            for t, a_row, b_row, same, js in zip(alpha.target_labels, alpha.matrix, attribution.matrix, agree.top1,
                                                 agree.js_distance)]
    return dict(
        summary=summary_markdown(result, agree, second, name[key], name[other], merge),
        attention=explain_plots.map_figure(alpha.source_labels, alpha.target_labels, alpha.matrix,
                                           f"Attention αₜᵢ ({unit})", "α", marks=alpha.matrix.argmax(-1).tolist()),
        attribution=explain_plots.map_figure(attribution.source_labels, attribution.target_labels,
                                             attribution.matrix, f"Attribution: {name[key]} ({unit})", "share",
                                             attribution=True, marks=attribution.matrix.argmax(-1).tolist()),
        scores=explain_plots.piece_scores_figure(tgt, result["step_logprobs"], result["greedy_pieces"],
                                                 result["greedy_logprobs"]),
        rows=rows)


def summary_markdown(result: dict, agree: explain.Agreement, second: explain.Agreement, name: str, other: str,
                     merged: bool) -> str:
    """The one-line verdict, then the numbers behind it (escaped: pieces come from the model's vocabulary)."""
    steps = len(result["target_pieces"])
    differ = [i for i, (p, g) in enumerate(zip(result["target_pieces"], result["greedy_pieces"])) if p != g]
    gap = max(result["completeness_error"], default=0.0)
    change = np.abs(np.array(result["step_logprobs"]) - np.array(result["baseline_logprobs"]))
    whose = "the translation given" if result["given"] else "the model's own greedy translation"
    lines = [f"**{md(agree.summary(merged))}** ({md(name)}; mean Jensen–Shannon distance {agree.mean_js:.2f}, "
             f"0 = same map, 1 = disjoint). With {md(other)}: {second.agreeing} of {len(second.top1)}, "
             f"JS {second.mean_js:.2f}.",
             f"Score of {whose}: log p = {sum(result['step_logprobs']):.2f} over {steps} pieces; the model's own "
             f"first choice differs at {len(differ)} of {steps} steps"
             + (": " + ", ".join(f"{code(result['target_pieces'][i])} → {code(result['greedy_pieces'][i])}"
                                 for i in differ[:8]) + (" …" if len(differ) > 8 else "") if differ else "") + ".",
             f"Integrated gradients: {result['steps']} steps from a baseline of pad embeddings; the largest "
             f"completeness gap |Σᵢ Aₜᵢ − (fₜ(x) − fₜ(baseline))| is {gap:.4f} nats "
             f"(rows change by {change.mean():.2f} nats on average). Computed in {result['seconds']:.2f} s."]
    if result.get("notice"):
        lines.append(md(result["notice"]))
    return "  \n".join(lines)


# ---------------------------------------------------------------------- state trajectories
def _folder(model: str, session: Session | None) -> Path | None:
    """Where the model's state projection may be cached: a bundled or fine-tuned model's checkpoint folder;
    None (memory only) for a Hub model, whose folder is the shared Hugging Face cache."""
    own = (session or Session()).models.get(model)
    if own is None:
        return _local_models().get(model)
    return own.folder if own.archive is not None else None


@gpu()
def state_trajectories(model: str, text: str, translation: str | None = "", session: Session | None = None) -> dict:
    """Encoder and decoder states of one sentence (its greedy translation, or the one given) in 2-D, with the
    PCA bases of the model (fitted once on validation sentences and cached): {"figure", "note"}."""
    text = check_text(text)
    translator = get_translator(model, session)
    source_ids, _ = translator.encode_source(text)
    given = (translation or "").strip()[:2000]
    target_ids = (translator.target_tokenizer.encode(given) + [translator.config.eos_id] if given
                  else explain.greedy_ids(translator.model, source_ids))[:MAX_TARGET_PIECES]
    bases = trajectories.bases_for(translator.model, _pair_encoder(translator), _folder(model, session))
    encoder, decoder = trajectories.states(translator.model, [(source_ids, target_ids)])[0]
    figure = explain_plots.trajectories_figure(
        translator.source_tokenizer.pieces(source_ids), bases.encoder.project(encoder),
        translator.target_tokenizer.pieces(target_ids), bases.decoder.project(decoder),
        (bases.encoder.explained.tolist(), bases.decoder.explained.tolist()), bases.sample)
    return dict(figure=figure, note=f"Bases fitted on {md(bases.sample)} (never on the sentence shown).")


def _pair_encoder(translator: Translator):
    """(source, reference or None) -> (source ids, target ids): the reference, else the greedy translation."""
    def encode(source: str, reference: str | None) -> tuple[list[int], list[int]]:
        ids, _ = translator.encode_source(source)
        target = (translator.target_tokenizer.encode(reference) + [translator.config.eos_id] if reference
                  else explain.greedy_ids(translator.model, ids))
        return ids, target[:MAX_TARGET_PIECES]
    return encode


# ---------------------------------------------------------------------- the three attention scores
def score_models() -> dict[str, str]:
    """kind -> bundled model name, for the score models present here."""
    local = _local_models()
    return {kind: name for kind, name in SCORE_MODELS.items() if name in local}


@gpu()
def compare_attention_scores(text: str, merge_words: bool = False, session: Session | None = None) -> dict:
    """One English sentence through the bundled en-de-{general,dot,additive} models: {"figures": one per kind
    (an empty figure where that model is not bundled), "table": rows of metrics, "note"}."""
    text = check_text(text)
    present = score_models()
    figures, table, models = [], [], []
    for kind in SCORE_KINDS:
        if kind not in present:
            figures.append(plots.empty_figure(f"{SCORE_MODELS[kind]} is not bundled here."))
            continue
        translator = get_translator(present[kind], session)
        models.append(translator.model)
        trace = translator.translate(text, DecodeOptions(), record_tree=False)
        figures.append(plots.attention_figure(trace, bool(merge_words), title=f"{kind}: {SCORE_EQUATIONS[kind]}"))
        table.append([kind, SCORE_EQUATIONS[kind], trace.translation, *metric_cells(_local_models()[present[kind]])])
    if not present:
        note = ("None of the three score models (" + ", ".join(code(n) for n in SCORE_MODELS.values()) + ") is "
                f"bundled here: they are trained by `configs/en-de-{{general,dot,additive}}.toml` into checkpoints/.")
    else:
        differences = explain.differences_besides_attention(models)
        missing = [SCORE_MODELS[k] for k in SCORE_KINDS if k not in present]
        note = ("The models differ only in the attention score (same data, recipe, size and seed)." if not differences
                else "These models differ in more than the score: " + "; ".join(md(d) for d in differences[:5]))
        if missing:
            note += " Not bundled here: " + ", ".join(code(m) for m in missing) + "."
    return dict(figures=figures, table=table, note=note)


def metric_cells(folder: Path) -> list[str]:
    """BLEU / chrF on the everyday set and Multi30k test 2016 from the folder's metrics.json ('–' where
    missing), beam 5 when measured, else greedy."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    cells = []
    for test, _ in METRIC_SETS:
        entry = next((metrics[k] for k in (f"{test}/beam 5", f"{test}/greedy") if isinstance(metrics.get(k), dict)),
                     None)
        cells.append("–" if entry is None else f"{entry.get('bleu', float('nan')):.1f} / "
                                               f"{entry.get('chrf', float('nan')):.1f} ({entry.get('decoding', '?')})")
    return cells
