"""Model cards: YAML metadata the Hub reads, and a page a person can act on.

`model_card` assembles the page from one builder per section; `refresh_card` rewrites a checkpoint's card
(and the JSON it is built from) in place, for training and evaluation alike.
"""
from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .attention import SCORES
from .checkpoint import CARD_FILE, CONFIG_FILE, TRAINING_FILE
from .config import Config
from .files import atomic_write
from .repo_id import is_repo_id

METRICS_FILE = "metrics.json"
DATASETS = {
    "multi30k": dict(
        hub_id="bentrevett/multi30k", license="cc-by-4.0",
        text=("Multi30k task 1 (Elliott et al., 2016, *Multi30K: Multilingual English-German Image Descriptions*; "
              "Elliott et al., 2017, *Findings of the Second Shared Task on Multimodal Machine Translation and "
              "Multilingual Image Description* for French): 29,000 training pairs of Flickr30k image captions.")),
    "tatoeba": dict(
        hub_id="tatoeba", license="cc-by-2.0",
        text=("English–{other} sentence pairs from the Tatoeba Project via manythings.org (file of {date}), "
              "CC-BY 2.0 (France). Attribution: www.manythings.org/anki and tatoeba.org. The data from the "
              "Tatoeba Project contains errors; only sentences by native speakers and proofread sentences were "
              "included by manythings.org.")),
}
TATOEBA_FILES = {"de": ("German", "2018-05-13"), "fr": ("French", "2017-09-29")}  # manythings.org packages


def datasets_of(recipe: dict, config: Config) -> list[dict]:
    """The corpora a recipe trained on (mixed: both), each with its attribution text for this language pair."""
    corpus = recipe.get("corpus", "")
    names = ["tatoeba", "multi30k"] if corpus == "mixed" else [corpus] if corpus in DATASETS else []
    other = config.tgt_lang if config.src_lang == "en" else config.src_lang
    language, date = TATOEBA_FILES.get(other, ("French", "2017-09-29"))
    return [dict(DATASETS[name], text=DATASETS[name]["text"].format(other=language, date=date)) for name in names]


def model_card(config: Config, training: dict | None = None, metrics: dict | None = None,
               repo_id: str | None = None, base_model: str | None = None, fine_tune: dict | None = None) -> str:
    """README.md text: YAML metadata (library_name, languages, tags, license, datasets, base_model, metrics and
    model-index with the scores) and a page saying what the model is, how it was trained, how well it does
    and how to use it."""
    training, metrics = training or {}, metrics or {}
    recipe = training.get("recipe", {})
    datasets = datasets_of(recipe, config)
    name = repo_id or recipe.get("name") or f"s2s {config.src_lang}→{config.tgt_lang}"
    body = (_intro(name, config) + _model_section(config) + _training_section(config, training, base_model, fine_tune)
            + _results_section(config, training, metrics) + _usage_section(repo_id))
    data = _card_data(config, recipe, metrics, datasets, repo_id, base_model)
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body)
    return str(card).rstrip("\n") + "\n"  # the template engine drops the final newline


# ---------------------------------------------------------------------- metadata
def _card_data(config: Config, recipe: dict, metrics: dict, datasets: list[dict], repo_id: str | None,
               base_model: str | None) -> ModelCardData:
    return ModelCardData(
        library_name="s2s", pipeline_tag="translation",
        language=[config.src_lang, config.tgt_lang],
        # mixed data: the first corpus's license (Tatoeba's CC-BY 2.0); the text names every corpus's license
        license=datasets[0]["license"] if datasets else "apache-2.0",
        tags=["translation", "seq2seq", config.rnn, "attention", f"{config.src_lang}-{config.tgt_lang}"],
        datasets=[d["hub_id"] for d in datasets] or None,
        # The Hub links base_model to that repo's page; a local path or bundled name is only named in the text.
        base_model=base_model if base_model and is_repo_id(base_model) else None,
        metrics=["bleu", "chrf"] if metrics else None,
        model_name=(repo_id or recipe.get("name", "s2s-model")) if metrics else None,
        eval_results=_eval_results(metrics, datasets[0]["hub_id"] if datasets else "custom") or None)


def _eval_results(metrics: dict, dataset_type: str) -> list[EvalResult]:
    """Two results (BLEU, chrF) per test set and decoding; the split keeps test sets apart in the model-index."""
    results = []
    for m in metrics.values():
        for metric, label in (("bleu", "BLEU"), ("chrf", "chrF")):
            results.append(EvalResult(
                task_type="translation", task_name="Translation", dataset_type=dataset_type,
                dataset_name=m["test_set"], dataset_split=m["test_set"], metric_type=metric,
                metric_value=round(m[metric], 2), metric_name=f"{label} ({m['decoding']})"))
    return results


def validate_card(text: str, config: Config) -> ModelCard:
    """Parse a card with huggingface_hub and check the metadata the Hub and s2s rely on; ValueError if wrong."""
    try:
        card = ModelCard(text)  # parses the YAML front matter and its model-index (eval results)
    except Exception as err:  # huggingface_hub raises ValueError/YAMLError/KeyError for malformed metadata
        raise ValueError(f"model card metadata does not parse: {err}") from None
    data = card.data.to_dict()
    problems = []
    if data.get("library_name") != "s2s":
        problems.append(f"library_name is {data.get('library_name')!r}, not 's2s'")
    languages = data.get("language") or []
    for code in (config.src_lang, config.tgt_lang):
        if code not in languages:
            problems.append(f"language {code!r} is missing")
    if "translation" not in (data.get("tags") or []):
        problems.append("tag 'translation' is missing")
    if not data.get("license"):
        problems.append("license is missing")
    base_model = data.get("base_model")
    if base_model is not None and not (isinstance(base_model, str) and is_repo_id(base_model)):
        problems.append(f"base_model {base_model!r} is not a Hub repo id")
    if problems:
        raise ValueError("; ".join(problems))
    return card


# ---------------------------------------------------------------------- the page, section by section
def architecture(config: Config) -> str:
    """The model in one sentence (markdown): the card's Model section and the app's model summary."""
    rnn = config.rnn.upper()
    return (f"{'bidirectional ' if config.bidirectional else ''}{rnn} encoder "
            f"({config.num_layers}×{config.encoder_hidden_size} per direction), {rnn} decoder "
            f"({config.num_layers}×{config.hidden_size}), **{config.attention}** attention "
            f"({'with' if config.input_feeding else 'without'} input feeding), embeddings {config.emb_size}, "
            f"attentional layer {config.attentional_size}, vocabularies {config.src_vocab_size}/"
            f"{config.tgt_vocab_size} SentencePiece pieces (byte fallback)"
            + (", tied target embeddings" if config.tie_embeddings else ""))


def _intro(name: str, config: Config) -> str:
    return f"""
# {name}

An LSTM encoder–decoder with attention for {config.src_lang}→{config.tgt_lang} translation, made with
**s2s**: it shows its attention weights αₜᵢ, decodes step by step, and can be fine-tuned
in the browser.
"""


def _model_section(config: Config) -> str:
    return f"""
## Model

{architecture(config)}. Score {_score(config.attention)}; αₜ = softmax(eₜ);
h̃ₜ = tanh(W_c [aₜ; hₜ]).
"""


def _score(kind: str) -> str:
    equation, source = SCORES[kind]
    return f'{equation} ("{kind}", {source})'


def _training_section(config: Config, training: dict, base_model: str | None, fine_tune: dict | None) -> str:
    recipe = training.get("recipe", {})
    corpora = "\n\n".join(d["text"] for d in datasets_of(recipe, config))
    how = _fine_tune_text(fine_tune, base_model) if fine_tune else _recipe_text(config, training) if recipe else ""
    return f"""
## Training

{how}
{corpora}
"""


def _fine_tune_text(fine_tune: dict, base_model: str | None) -> str:
    source = f"from `{base_model}` " if base_model else ""
    how = (f"Fine-tuned in the s2s app {source}on {fine_tune.get('pairs', '?')} user sentence pairs "
           f"for {fine_tune.get('epochs', '?')} epochs (learning rate {fine_tune.get('lr', '?')}).")
    if fine_tune.get("bleu_before") is not None and fine_tune.get("bleu_after") is not None:
        how += (f" On {fine_tune.get('heldout', '?')} held-out pairs, greedy BLEU went from "
                f"{fine_tune['bleu_before']:.1f} to {fine_tune['bleu_after']:.1f}.")
    return how + (" The base model's training data and its attribution are described on the base model's card; "
                  "the user pairs are not published.\n")


def _recipe_text(config: Config, training: dict) -> str:
    recipe, state = training["recipe"], training.get("state", {})
    hours = state.get("elapsed_s", 0) / 3600
    tok_s = state.get("target_tokens", 0) / max(state.get("elapsed_s", 1e-9), 1e-9) if state else 0
    how = (f"Trained from scratch with `s2s train --config configs/{recipe.get('name', 'model')}.toml` "
           f"on {training.get('hardware', 'CPU')}: {state.get('step', 0)} updates, {state.get('epoch', 0)} "
           f"epochs, {hours:.2f} h wall time, {tok_s:,.0f} target tokens/s on average (evaluation included). "
           f"Adam (lr {recipe.get('lr')}), batches of ~{recipe.get('batch_tokens')} target tokens, label "
           f"smoothing {recipe.get('label_smoothing')}, dropout {config.dropout}, best checkpoint by "
           f"validation BLEU (greedy) {state.get('best_bleu', 0):.1f}.")
    final = training.get("final")
    if final:
        how += (f" The run itself lasted {final['elapsed_s'] / 60:.0f} minutes ({final['step']} updates, "
                f"stopped by {final['stop_reason']}); this checkpoint is its best by validation BLEU.")
    for restart in training.get("restarts", []):  # `s2s train --init-from`: no optimizer state was kept
        how += (f" At update {restart['step']} training went on from the saved weights of {restart['from_folder']} "
                f"with a fresh Adam at lr {restart['lr']:g}")
        changes = restart.get("recipe_changes", {})
        how += ("; from then on the recipe had " + ", ".join(f"{k} = {new} (before: {old})"
                                                             for k, (old, new) in changes.items())
                if changes else "") + "."
    if training.get("averaging"):  # written by whoever averaged the run's saves (`s2s average`)
        how += f" Unlike a single save, {training['averaging']}."
    if recipe.get("corpus") in ("tatoeba", "pairs"):
        how += (f" Data split by source sentence (seed {recipe.get('split_seed')}): {recipe.get('n_test')} test "
                f"and {recipe.get('n_val')} validation source sentences, each with all its translations as "
                f"references, so no test sentence was seen in training; {training.get('train_pairs', '?')} "
                "training pairs.")
    if recipe.get("corpus") == "mixed":
        how += (f" Tatoeba and Multi30k together (Multi30k train repeated {recipe.get('multi30k_weight', 1)}×), "
                f"de-duplicated; Tatoeba split by {config.src_lang} sentence (seed {recipe.get('split_seed')}: "
                f"{recipe.get('n_test')} test and {recipe.get('n_val')} validation sources, all their translations "
                "as references), and every Tatoeba and Multi30k test or validation source removed from training; "
                f"{training.get('train_pairs', '?')} training pairs. Validation mixes both corpora.")
        if recipe.get("joined_fraction"):
            how += (f" {recipe['joined_fraction']:g} extra pairs per Tatoeba pair are 2–3 random Tatoeba pairs "
                    "joined into one line (in training from training pairs, in validation from validation "
                    "pairs), so the model learns to go on after a sentence's end and to translate long inputs.")
    return how + "\n"


def _results_section(config: Config, training: dict, metrics: dict) -> str:
    note = (f"\nBeam search uses this model's length penalty α = {config.length_penalty:g} by default "
            "(GNMT form ((5 + |Y|) / 6)^α)")
    if config.coverage_penalty:
        note += f" and coverage penalty β = {config.coverage_penalty:g} (GNMT: β·Σᵢ log min(Σₜ αₜᵢ, 1))"
    if config.reverse_model and config.reverse_weight:
        note += (f", and reranks the beam's finished translations by the model that translates back, "
                 f"`{config.reverse_model}` (a sibling folder), with weight λ = {config.reverse_weight:g}: "
                 "score + λ · its mean log p(source piece | translation) (rows "
                 f"\"beam N, reranked by {config.reverse_model}\"; plain \"beam N\" rows are without it: "
                 "`s2s evaluate --reverse-weight 0`)")
    note += f": {training['decoding']}.\n" if training.get("decoding") else ".\n"
    return f"""
## Results

{_metrics_table(metrics)}{note}
"""


def _metrics_table(metrics: dict) -> str:
    if not metrics:
        return "_Not evaluated yet: run `s2s evaluate` (see below)._\n"
    rows = ["| test set | decoding | BLEU | chrF |", "|---|---|---|---|"]
    for key, m in sorted(metrics.items()):
        rows.append(f"| {m['test_set']} | {m['decoding']} | {m['bleu']:.1f} | {m['chrf']:.1f} |")
    signature = next(iter(metrics.values())).get("signature", "")
    return "\n".join(rows) + (f"\n\nsacreBLEU signature: `{signature}`\n" if signature else "\n")


def _usage_section(repo_id: str | None) -> str:
    where = repo_id or "PATH_OR_REPO_ID"
    return f"""## Usage

```bash
echo "A man is riding a bicycle." | s2s translate --model {where} --beam 5
```

```python
from s2s.hub import load
translator = load("{where}")
print(translator.translate("A man is riding a bicycle.").translation)
```

Files: `config.json` (architecture), `model.safetensors` (weights), `source.model` / `target.model`
(SentencePiece), `training.json` (recipe and history).
"""


# ---------------------------------------------------------------------- a checkpoint's card, refreshed
def refresh_card(folder: str | Path, training_update: dict | None = None, metrics_update: dict | None = None) -> None:
    """Merge new entries into a checkpoint's training.json / metrics.json and regenerate its README.md.

    Every file is replaced atomically; the weights are never touched.
    """
    folder = Path(folder)
    training = _read_json(folder / TRAINING_FILE)
    metrics = _read_json(folder / METRICS_FILE)
    if training_update:
        training.update(training_update)
        atomic_write(folder / TRAINING_FILE, json.dumps(training, indent=2) + "\n")
    if metrics_update:
        metrics.update(metrics_update)
        atomic_write(folder / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    atomic_write(folder / CARD_FILE, model_card(Config.load(folder / CONFIG_FILE), training, metrics))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
