"""Count source content words a model leaves out of its translation, on the everyday set.

There is no word aligner here, so omissions are found by back-translation with the reverse model:
a source content word counts as *omitted* when the back-translation of the reference brings it back
but the back-translation of the model's output does not. Words the reverse model never reproduces
(paraphrases, its own mistakes) therefore do not count against the forward model.

    .venv/bin/python bench/omissions.py --model checkpoints/en-de --reverse checkpoints/de-en \
        [--coverage-penalty 0 0.2] [--reverse-weight 1 --rerank-beam 10] [--json bench/results/omissions-en-de.json]

`--reverse-weight`: also decode with the beam reranked by the reverse model (s2s.rerank) at these weights.
That reranker is the model this count back-translates with, so it is partly judged by itself: read its
rows as "what the reranker removes of what it can see", not as an independent count.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from s2s.api import DecodeOptions, Translator  # noqa: E402
from s2s.evaluate import read_everyday  # noqa: E402

# Function words and auxiliaries: leaving one of these out is rarely a lost meaning.
STOPWORDS = {
    "en": set("""a an the and or but if so of to in on at by for from with about as into over under than then
        that this these those there here it its it's i me my mine you your yours he him his she her hers we us our
        they them their is am are was were be been being do does did doing have has had having will would can
        could should shall may might must not no don't didn't doesn't isn't aren't wasn't weren't won't can't
        i'm you're he's she's we're they're i've you've we've they've i'll you'll he'll she'll we'll they'll i'd
        you'd what which who whom whose when where why how all any some very just also too up out off again
        more most much many such only own same each both few other let's get got""".split()),
    "de": set("""der die das den dem des ein eine einen einem einer eines und oder aber wenn so von zu in im
        ins an am auf bei für aus mit über unter als dass daß dies diese dieser dieses diesen es ich mich mir
        mein meine meinen meinem meiner du dich dir dein deine er ihn ihm sein seine sie ihr ihre ihren uns
        unser unsere wir euch ist bin bist sind war waren sein gewesen hat habe hast haben hatte hatten wird
        werde werden würde würden kann kannst können konnte könnte soll sollte sollten muss müssen darf nicht
        kein keine keinen noch schon auch sehr nur was wer wie wo wann warum man sich um bis nach vor""".split()),
    "fr": set("""le la les l' un une des du de d' et ou mais si au aux à en dans sur par pour avec sans que
        qu' qui ce cet cette ces il elle ils elles je j' me m' moi tu te t' toi nous vous on se s' son sa ses
        mon ma mes ton ta tes notre nos votre vos leur leurs est suis es sommes êtes sont était étaient être
        été ai as a avons avez ont avait avaient avoir fait faire peux peut pouvons pouvez peuvent pourrait
        dois doit devons devez ne n' pas plus très aussi bien y ça cela comme quand où comment pourquoi""".split()),
}
WORD = re.compile(r"[\w']+", re.UNICODE)


def words(text: str) -> list[str]:
    return [w.strip("'") for w in WORD.findall(text.lower()) if w.strip("'")]


def content_words(text: str, lang: str) -> set[str]:
    stop = STOPWORDS.get(lang, set())
    return {w for w in words(text) if w not in stop and (len(w) > 2 or w.isdigit())}


def count_omissions(sources: list[str], back_hyps: list[str], back_refs: list[str], lang: str
                    ) -> tuple[int, int, list[dict]]:
    """(omitted, checked, examples): content words of each source that the reference's back-translation
    keeps and the output's back-translation loses."""
    omitted, checked, examples = 0, 0, []
    for source, back_hyp, back_ref in zip(sources, back_hyps, back_refs):
        recoverable = content_words(source, lang) & set(words(back_ref))
        lost = sorted(w for w in recoverable if w not in set(words(back_hyp)))
        checked += len(recoverable)
        omitted += len(lost)
        if lost:
            examples.append(dict(source=source, back_translation=back_hyp, omitted=lost))
    return omitted, checked, examples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--reverse", required=True, help="the model of the opposite direction")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--coverage-penalty", type=float, nargs="+", default=[0.0])
    parser.add_argument("--reverse-weight", type=float, nargs="*", default=[],
                        help="reranking weights λ to count as well (at the model's own β)")
    parser.add_argument("--rerank-beam", type=int, default=10, help="beam width of the reranked decodes")
    parser.add_argument("--json")
    args = parser.parse_args()
    # the count itself never reranks: the back-translations are the reverse model's plain beam search
    forward = Translator.load(args.model, device="cpu")
    reverse = Translator.load(args.reverse, device="cpu", reverse=False)
    forward.reverse = forward.reverse or (reverse if args.reverse_weight else None)
    lang = forward.config.src_lang
    pairs = read_everyday(lang, forward.config.tgt_lang)
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    back_refs = reverse.translate_batch(refs, DecodeOptions(method="beam", beam_size=args.beam))
    results = {}
    runs = [(f"coverage_penalty={beta}", DecodeOptions(method="beam", beam_size=args.beam, coverage_penalty=beta,
                                                       reverse_weight=0.0)) for beta in args.coverage_penalty]
    runs += [(f"reverse_weight={weight}", DecodeOptions(method="beam", beam_size=args.rerank_beam,
                                                        reverse_weight=weight)) for weight in args.reverse_weight]
    for key, options in runs:
        hyps = forward.translate_batch(sources, options)
        back_hyps = reverse.translate_batch(hyps, DecodeOptions(method="beam", beam_size=args.beam))
        omitted, checked, examples = count_omissions(sources, back_hyps, back_refs, lang)
        results[key] = dict(omitted=omitted, checked=checked, sentences=len(sources), beam=options.beam_size,
                            examples=examples)
        print(f"{args.model} beam {options.beam_size} {key.replace('_', ' ')}: {omitted} of {checked} recoverable "
              f"source content words omitted ({len(examples)} sentences)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
