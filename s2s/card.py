"""Model cards: YAML metadata the Hub reads, and a page a person can act on."""
from __future__ import annotations

import json

from huggingface_hub import ModelCard, ModelCardData

from .config import Config

DATASETS = {
    "multi30k": dict(
        hub_id="bentrevett/multi30k", license="cc-by-4.0",
        text=("Multi30k task 1 (Elliott et al., 2016, *Multi30K: Multilingual English-German Image Descriptions*; "
              "Elliott et al., 2017, *Findings of the Second Shared Task on Multimodal Machine Translation and "
              "Multilingual Image Description* for French): 29,000 training pairs of Flickr30k image captions.")),
    "tatoeba": dict(
        hub_id="tatoeba", license="cc-by-2.0",
        text=("English–French sentence pairs from the Tatoeba Project via manythings.org (file of 2017-09-29), "
              "CC-BY 2.0 (France). Attribution: www.manythings.org/anki and tatoeba.org. The data from the "
              "Tatoeba Project contains errors; only sentences by native speakers and proofread sentences were "
              "included by manythings.org.")),
}


def _decoding_note(config: Config, training: dict) -> str:
    note = (f"\nBeam search uses this model's length penalty α = {config.length_penalty:g} by default "
            "(GNMT form ((5 + |Y|) / 6)^α)")
    return note + (f": {training['decoding']}.\n" if training.get("decoding") else ".\n")


def _metrics_table(metrics: dict) -> str:
    if not metrics:
        return "_Not evaluated yet: run `s2s evaluate` (see below)._\n"
    rows = ["| test set | decoding | BLEU | chrF |", "|---|---|---|---|"]
    for key, m in sorted(metrics.items()):
        rows.append(f"| {m['test_set']} | {m['decoding']} | {m['bleu']:.1f} | {m['chrf']:.1f} |")
    signature = next(iter(metrics.values())).get("signature", "")
    return "\n".join(rows) + (f"\n\nsacreBLEU signature: `{signature}`\n" if signature else "\n")


def model_card(config: Config, training: dict | None = None, metrics: dict | None = None,
               repo_id: str | None = None, base_model: str | None = None, fine_tune: dict | None = None) -> str:
    """README.md text: YAML metadata (library_name, languages, tags, license, datasets, base_model, metrics and
    model-index with the scores) and a page saying what the model is, how it was trained, how well it does
    and how to use it."""
    training = training or {}
    recipe = training.get("recipe", {})
    corpus = recipe.get("corpus", "")
    dataset = DATASETS.get(corpus)
    model_index = []
    card_data = ModelCardData(
        library_name="s2s", pipeline_tag="translation",
        language=[config.src_lang, config.tgt_lang],
        license="cc-by-4.0" if corpus == "multi30k" else "cc-by-2.0" if corpus == "tatoeba" else "apache-2.0",
        tags=["translation", "seq2seq", config.rnn, "attention", f"{config.src_lang}-{config.tgt_lang}"],
        datasets=[dataset["hub_id"]] if dataset else None,
        # The Hub links base_model to that repo's page; a local path or bundled name is only named in the text.
        base_model=base_model if base_model and _is_repo_id(base_model) else None,
        metrics=["bleu", "chrf"] if metrics else None,
    )
    if metrics:
        for m in metrics.values():
            model_index.append(dict(task=dict(type="translation", name="Translation"),
                                    dataset=dict(name=m["test_set"], type=dataset["hub_id"] if dataset else "custom"),
                                    metrics=[dict(type="bleu", value=round(m["bleu"], 2), name=f"BLEU ({m['decoding']})"),
                                             dict(type="chrf", value=round(m["chrf"], 2), name=f"chrF ({m['decoding']})")]))
        card_data.model_name = repo_id or recipe.get("name", "s2s-model")
        card_data.eval_results = None
    name = repo_id or recipe.get("name") or f"s2s {config.src_lang}→{config.tgt_lang}"
    state = training.get("state", {})
    hours = state.get("elapsed_s", 0) / 3600
    tok_s = state.get("target_tokens", 0) / max(state.get("elapsed_s", 1e-9), 1e-9) if state else 0
    arch = (f"{'bidirectional ' if config.bidirectional else ''}{config.rnn.upper()} encoder "
            f"({config.num_layers}×{config.encoder_hidden_size} per direction), {config.rnn.upper()} decoder "
            f"({config.num_layers}×{config.hidden_size}), **{config.attention}** attention "
            f"({'with' if config.input_feeding else 'without'} input feeding), embeddings {config.emb_size}, "
            f"attentional layer {config.attentional_size}, vocabularies {config.src_vocab_size}/"
            f"{config.tgt_vocab_size} SentencePiece pieces (byte fallback)"
            + (", tied target embeddings" if config.tie_embeddings else ""))
    how = ""
    if fine_tune:
        source = f"from `{base_model}` " if base_model else ""
        how = (f"Fine-tuned in the s2s app {source}on {fine_tune.get('pairs', '?')} user sentence pairs "
               f"for {fine_tune.get('epochs', '?')} epochs (learning rate {fine_tune.get('lr', '?')}).")
        if fine_tune.get("bleu_before") is not None and fine_tune.get("bleu_after") is not None:
            how += (f" On {fine_tune.get('heldout', '?')} held-out pairs, greedy BLEU went from "
                    f"{fine_tune['bleu_before']:.1f} to {fine_tune['bleu_after']:.1f}.")
        how += (" The base model's training data and its attribution are described on the base model's card; "
                "the user pairs are not published.\n")
    elif recipe:
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
        if recipe.get("corpus") in ("tatoeba", "pairs"):
            how += (f" Data split by source sentence (seed {recipe.get('split_seed')}): {recipe.get('n_test')} test "
                    f"and {recipe.get('n_val')} validation source sentences, each with all its translations as "
                    f"references, so no test sentence was seen in training; {training.get('train_pairs', '?')} "
                    "training pairs.")
        how += "\n"
    body = f"""
# {name}

An LSTM encoder–decoder with attention for {config.src_lang}→{config.tgt_lang} translation, made with
**s2s**: it shows its attention weights αₜᵢ, decodes step by step, and can be fine-tuned
in the browser.

## Model

{arch}. Score eₜᵢ = h̄ᵢᵀ W_a hₜ ("general", Luong et al. 2015) or as configured; αₜ = softmax(eₜ);
h̃ₜ = tanh(W_c [aₜ; hₜ]).

## Training

{how}
{dataset['text'] if dataset else ''}

## Results

{_metrics_table(metrics or {})}{_decoding_note(config, training)}
## Usage

```bash
echo "A man is riding a bicycle." | s2s translate --model {repo_id or 'PATH_OR_REPO_ID'} --beam 5
```

```python
from s2s.hub import load
translator = load("{repo_id or 'PATH_OR_REPO_ID'}")
print(translator.translate("A man is riding a bicycle.").translation)
```

Files: `config.json` (architecture), `model.safetensors` (weights), `source.model` / `target.model`
(SentencePiece), `training.json` (recipe and history).
"""
    card = ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n" + body)
    if model_index:
        data = card.data.to_dict()
        data["model-index"] = [dict(name=str(card_data.model_name), results=model_index)]
        card = ModelCard("---\n" + _yaml(data) + "---\n" + body)
    return str(card)


def _is_repo_id(name: str) -> bool:
    from .hub import HubError, parse_repo_id  # hub imports this module; import on use

    try:
        return parse_repo_id(name) == name
    except HubError:
        return False


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
    if base_model is not None and not (isinstance(base_model, str) and _is_repo_id(base_model)):
        problems.append(f"base_model {base_model!r} is not a Hub repo id")
    if problems:
        raise ValueError("; ".join(problems))
    return card


def _yaml(data: dict) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_training_card(config: Config, training: dict, metrics: dict | None = None) -> str:
    return model_card(config, training, metrics)
