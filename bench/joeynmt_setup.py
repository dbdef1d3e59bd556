"""Prepare JoeyNMT 2.3 for the comparison: its own virtual environment, the same data and subwords as ours,
and its YAML config. Called by bench/run.py (in the s2s environment); JoeyNMT itself only ever runs in
bench/work/joeynmt-venv through bench/joeynmt_driver.py.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import sentencepiece as spm
import yaml

from common import BENCH, REPO, WORK

VENV = WORK / "joeynmt-venv"
FOLDER = WORK / "joeynmt"
TEMPLATE = BENCH / "joeynmt" / "en-de-multi30k-lstm.yaml"
# torch pinned to the version s2s uses, so both sides run the same kernels. joeynmt 2.3.0 imports
# importlib_metadata without declaring it, and calls SentencePieceProcessor.SetVocabulary, which
# sentencepiece 0.2.1+ no longer has.
REQUIREMENTS = ["torch==2.13.0", "joeynmt==2.3.0", "importlib_metadata", "sentencepiece==0.2.0"]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def venv_ready() -> bool:
    if not venv_python().exists():
        return False
    check = subprocess.run([str(venv_python()), "-c", "import joeynmt, importlib_metadata, sentencepiece, torch"],
                           capture_output=True)
    return check.returncode == 0


def ensure_venv(log) -> None:
    """Create bench/work/joeynmt-venv and install JoeyNMT from PyPI unless it is already there."""
    if venv_ready():
        return
    log(f"installing JoeyNMT into {VENV.relative_to(REPO)} (a few minutes; torch is a large download)")
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    with open(WORK / "joeynmt-install.log", "w") as out:
        subprocess.run([str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", *REQUIREMENTS],
                       check=True, stdout=out, stderr=subprocess.STDOUT)
    if not venv_ready():
        raise RuntimeError(f"JoeyNMT installed but does not import; see {WORK / 'joeynmt-install.log'}")


def write_vocab(model_file: Path, out: Path) -> int:
    """JoeyNMT vocabulary file from one of our SentencePiece models: every piece, in id order, without the four
    special pieces (JoeyNMT puts its own <unk> <pad> <s> </s> first)."""
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
              if not (sp.is_control(i) or sp.is_unknown(i))]
    out.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return len(pieces) + 4


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line.replace("\n", " ") + "\n" for line in lines), encoding="utf-8")


def prepare(recipe_path: str | Path, model: str | Path, batch_size: int, logging_freq: int,
            train_pairs: int = 0) -> dict:
    """Data files, SentencePiece models, vocabularies and config.yaml under bench/work/joeynmt/.

    train_pairs > 0 keeps only that many training pairs (--quick); the full run uses the whole split.
    """
    from s2s import data as data_mod
    from s2s.recipe import Recipe, load_splits

    recipe = Recipe.load(recipe_path)
    data_dir = FOLDER / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    splits, _ = load_splits(recipe)  # the same cleaned pairs our trainer reads
    train = splits["train"][:train_pairs] if train_pairs else splits["train"]
    for name, pairs in (("train", train), ("dev", splits["val"][:20])):
        write_lines(data_dir / f"{name}.{recipe.src_lang}", [s for s, _ in pairs])
        write_lines(data_dir / f"{name}.{recipe.tgt_lang}", [t for _, t in pairs])
    test = data_mod.read_multi30k(recipe.data_path, "test_2016_flickr", recipe.src_lang, recipe.tgt_lang)
    write_lines(data_dir / "test_2016_flickr.src", [data_mod.normalize(s) for s, _ in test])
    write_lines(data_dir / "test_2016_flickr.ref", [data_mod.normalize(t) for _, t in test])
    vocab_sizes = {}
    for ours, theirs, vocab in (("source.model", "source.model", "src_vocab.txt"),
                                ("target.model", "target.model", "trg_vocab.txt")):
        shutil.copyfile(Path(model) / ours, FOLDER / theirs)
        vocab_sizes[vocab] = write_vocab(FOLDER / theirs, FOLDER / vocab)
    cfg = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    cfg["training"]["batch_size"] = int(batch_size)
    cfg["training"]["logging_freq"] = int(logging_freq)
    cfg["training"]["validation_freq"] = int(logging_freq) * 100000
    config_path = FOLDER / "config.yaml"
    config_path.write_text("# written by bench/joeynmt_setup.py from " + str(TEMPLATE.relative_to(REPO)) + "\n"
                           + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return dict(config=str(config_path.relative_to(REPO)), model_dir=cfg["model_dir"], batch_size=int(batch_size),
                train_pairs=len(train), vocab_sizes=vocab_sizes,
                sources=str((data_dir / "test_2016_flickr.src").relative_to(REPO)),
                refs=str((data_dir / "test_2016_flickr.ref").relative_to(REPO)))
