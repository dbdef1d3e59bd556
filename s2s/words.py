"""Content words and function words: the coverage hint flags only words that carry meaning.

An article, a pronoun, an auxiliary or a full stop that got little attention is no omission: translations
reorder, merge and drop such words all the time. Negations (not, nicht, pas, never, kein) count as content:
leaving one out flips the meaning.
"""
from __future__ import annotations

FUNCTION_WORDS = {
    "en": frozenset("""
        a an the this that these those some any each every all both either neither such
        i me my mine myself you your yours yourself he him his himself she her hers herself it its itself
        we us our ours ourselves they them their theirs themselves one
        who whom whose which what where when why how
        and or but nor so yet if then than because as while although though since until unless whether
        of in on at to for from by with about into onto over under between through during before after
        above below up down out off around against along across upon within like
        is am are was were be been being have has had having do does did doing
        will would shall should can could may might must
        there here also just very too quite really only even still already again s t d ll m re ve
        """.split()),
    "de": frozenset("""
        der die das den dem des ein eine einen einem einer eines
        ich mich mir mein meine meinen meinem meiner meines du dich dir dein deine deinen deinem deiner
        er ihn ihm sein seine seinen seinem seiner seines sie ihr ihre ihren ihrem ihrer ihres es
        wir uns unser unsere unseren unserem unserer euch euer eure euren eurem eurer man sich
        und oder aber denn sondern dass ob wenn als weil da damit obwohl während bis
        in im ins an am ans auf aus bei beim mit nach seit von vom zu zum zur für durch gegen um über
        unter vor hinter neben zwischen
        ist bin bist sind seid war waren warst wart gewesen habe hast hat haben habt hatte hatten gehabt
        werde wirst wird werden werdet wurde wurden worden kann kannst können könnt konnte konnten
        muss musst müssen soll sollst sollen will willst wollen darf dürfen mag möchte möchten
        auch noch schon sehr nur so ja doch mal dann dort hier
        wer wen wem wessen was wo wann warum wie welche welcher welches welchen
        dies diese dieser dieses diesem diesen
        """.split()),
    "fr": frozenset("""
        le la les l un une des du de d au aux ce cet cette ces
        je j me m moi tu te t toi il lui elle on nous vous ils elles leur leurs se s
        son sa ses mon ma mes ton ta tes notre nos votre vos y en
        et ou mais donc or ni car que qu qui quoi dont où quand comme si lorsque parce puisque
        à dans sur sous par pour avec chez vers entre
        est suis es sommes êtes sont était étais étaient été être ai as a avons avez ont avait avaient eu
        ne n très aussi bien déjà encore trop c ça cela ceci
        """.split()),
}
ANY_LANGUAGE = frozenset().union(*FUNCTION_WORDS.values())
APOSTROPHES = "'’"


def is_content_word(word: str, lang: str = "") -> bool:
    """Whether `word` carries meaning: it has a letter or digit and is not a function word of `lang` (of any
    language listed here when `lang` is unknown). Elisions count by their word: l'année is année, j'ai is ai."""
    word = word.strip().lower()
    if word.endswith(("n't", "n’t")):
        return True  # don't, can't: a negation
    for mark in APOSTROPHES:
        word = word.rsplit(mark, 1)[-1] if not word.endswith(mark) else word
    word = word.strip(".,;:!?¿¡\"'’“”«»()[]{}…-–—")
    if not any(ch.isalnum() for ch in word):
        return False
    return word not in FUNCTION_WORDS.get(lang, ANY_LANGUAGE)
