"""`s2s data get` and finding a recipe's corpora, against a local HTTP server (tests/data_server.py): checksums,
a broken download resumed, an offline failure that comes at once, and a fresh checkout (no ../shared) that
trains a recipe after `s2s data get`."""
import gzip
import hashlib
import io
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from data_server import DataServer, closed_port
from s2s import datasets
from s2s.data import read_multi30k, read_tatoeba
from s2s.download import ChecksumError, DownloadError, fetch
from s2s.recipe import Recipe, find_data, with_data
from test_cli import run
from tiny import tiny_recipe, toy_pairs

TINY_RECIPE = tiny_recipe("tiny-m30k", {"corpus": "multi30k", "dataset": "multi30k", "src_lang": "en", "tgt_lang": "de"},
                          max_steps=4, eval_every=2)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def corpora(monkeypatch, tmp_path):
    """A fake upstream (Multi30k-like gz files, a manythings-like zip) on a local server, registered under the real
    names; no ../shared, an empty user cache, no $S2S_DATA."""
    pairs = toy_pairs()
    multi30k = {}
    for split, chunk in (("train", pairs[:48]), ("val", pairs[48:56]), ("test_2016_flickr", pairs[56:])):
        for side, lang in enumerate(("en", "de")):
            multi30k[f"{split}.{lang}.gz"] = gzip.compress("".join(p[side] + "\n" for p in chunk).encode(), mtime=0)
    deu = "".join(f"{en}\t{de}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i}\n" for i, (en, de) in enumerate(pairs))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("deu.txt", deu)
        zf.writestr("_about.txt", "Test archive. Attribution: www.manythings.org/anki and tatoeba.org\n")
    files = {f"/raw/{name}": data for name, data in multi30k.items()}
    files |= {f"/mirror/multi30k/{name}": data for name, data in multi30k.items()}
    files |= {"/anki/deu-eng.zip": archive.getvalue(), "/mirror/tatoeba/deu-eng.zip": archive.getvalue()}
    server = DataServer(files)
    monkeypatch.setitem(datasets.DATASETS, "multi30k", datasets.Dataset(
        name="multi30k", path="multi30k", license="test licence M", attribution="cite the Multi30k papers",
        remotes=tuple(datasets.Remote(f"{server.url}/raw/{name}", sha256(data)) for name, data in multi30k.items())))
    monkeypatch.setitem(datasets.DATASETS, "tatoeba-eng-deu", datasets.Dataset(
        name="tatoeba-eng-deu", path="tatoeba/eng-deu.tsv.gz", license="CC-BY 2.0 (France)",
        attribution="tatoeba.org and manythings.org",
        remotes=(datasets.Remote(f"{server.url}/anki/deu-eng.zip", None,
                                 {"deu.txt": "eng-deu.tsv.gz", "_about.txt": "ABOUT-eng-deu.txt"}),),
        snapshot_sha256={"eng-deu.tsv.gz": sha256(deu.encode())}))
    monkeypatch.setattr(datasets, "SHARED_ROOTS", [tmp_path / "no-shared" / "data"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.delenv("S2S_DATA", raising=False)
    monkeypatch.delenv("S2S_DATA_MIRROR", raising=False)
    yield SimpleNamespace(server=server, multi30k=multi30k, deu=deu, pairs=pairs)
    server.close()


def test_get_checks_every_file_prints_the_license_and_does_nothing_twice(corpora, tmp_path):
    result = run(["data", "get", "multi30k", "--dir", str(tmp_path / "d"), "--quiet"])
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "d" / "multi30k"
    assert {p.name: p.read_bytes() for p in folder.glob("*.gz")} == corpora.multi30k
    assert "License: test licence M" in result.stdout and "Attribution: cite the Multi30k papers" in result.stdout
    assert read_multi30k(folder, "val") == corpora.pairs[48:56]
    before = len(corpora.server.requests)
    again = run(["data", "get", "multi30k", "--dir", str(tmp_path / "d"), "--quiet"])
    assert again.returncode == 0 and len(corpora.server.requests) == before  # every file there and intact


def test_a_checksum_mismatch_is_an_error_and_leaves_no_file(corpora, tmp_path):
    corpora.server.files["/raw/val.de.gz"] = gzip.compress(b"Ein ganz anderer Satz.\n", mtime=0)
    result = run(["data", "get", "multi30k", "--dir", str(tmp_path / "d"), "--quiet"])
    assert result.returncode == 2 and "val.de.gz" in result.stderr and "not the recorded" in result.stderr
    assert not list((tmp_path / "d" / "multi30k").glob("val.de.gz*"))  # neither the file nor a .part


def test_an_interrupted_download_resumes_where_it_stopped(corpora, tmp_path):
    name = "train.de.gz"
    data, url, target = corpora.multi30k[name], f"{corpora.server.url}/raw/{name}", tmp_path / name
    corpora.server.cut_after[f"/raw/{name}"] = 300
    with pytest.raises(DownloadError, match="run the same command again"):
        fetch(url, target, sha256(data), progress=False, retries=0)
    assert (tmp_path / f"{name}.part").stat().st_size == 300 and not target.exists()
    assert fetch(url, target, sha256(data), progress=False) == sha256(data)  # the next run asks for the rest
    assert target.read_bytes() == data and corpora.server.requests[-1] == (f"/raw/{name}", "bytes=300-")
    # within one run: the connection breaks, the downloader resumes by itself
    corpora.server.cut_after["/raw/val.en.gz"] = 100
    result = run(["data", "get", "multi30k", "--dir", str(tmp_path / "d"), "--quiet"])
    assert result.returncode == 0, result.stderr
    assert ("/raw/val.en.gz", "bytes=100-") in corpora.server.requests
    assert (tmp_path / "d" / "multi30k" / "val.en.gz").read_bytes() == corpora.multi30k["val.en.gz"]


def test_offline_fails_at_once_with_a_clear_message(corpora, tmp_path):
    started = time.monotonic()
    result = run(["data", "get", "multi30k", "--dir", str(tmp_path / "d"), "--quiet",
                  "--mirror", f"http://127.0.0.1:{closed_port()}/mirror"])
    assert time.monotonic() - started < 5
    assert result.returncode == 2 and "cannot reach 127.0.0.1" in result.stderr and "no network?" in result.stderr
    assert "Traceback" not in result.stderr
    corpora.server.stall["/raw/val.fr.gz"] = 3.0  # a server that stops answering: the read timeout ends it
    corpora.server.files["/raw/val.fr.gz"] = b"x" * 10
    started = time.monotonic()
    with pytest.raises(DownloadError, match="connection broke"):
        fetch(f"{corpora.server.url}/raw/val.fr.gz", tmp_path / "val.fr.gz", progress=False, timeout=0.5, retries=0)
    assert time.monotonic() - started < 3


def test_a_mirror_and_an_archive_with_no_fixed_hash(corpora, tmp_path):
    result = run(["data", "get", "tatoeba-eng-deu", "--dir", str(tmp_path / "d"), "--quiet",
                  "--mirror", f"{corpora.server.url}/mirror"])
    assert result.returncode == 0, result.stderr
    assert "/mirror/tatoeba/deu-eng.zip" in [path for path, _ in corpora.server.requests]
    tsv = tmp_path / "d" / "tatoeba" / "eng-deu.tsv.gz"
    assert gzip.decompress(tsv.read_bytes()).decode() == corpora.deu
    assert read_tatoeba(tsv, "de")[0] == (corpora.pairs[0][1], corpora.pairs[0][0])
    assert (tmp_path / "d" / "tatoeba" / "ABOUT-eng-deu.txt").read_text().startswith("Test archive")
    assert "no recorded SHA-256" in result.stdout and "the snapshot the bundled models were trained on" in result.stdout
    assert "License: CC-BY 2.0 (France)" in result.stdout
    assert not (tmp_path / "d" / "tatoeba" / ".downloads").exists()  # the archive is not kept


def test_corpora_are_found_in_the_documented_order(corpora, tmp_path, monkeypatch):
    roots = {label: tmp_path / label for label in ("given", "env", "cache", "shared")}
    monkeypatch.setenv("S2S_DATA", str(roots["env"]))
    monkeypatch.setattr(datasets, "user_cache", lambda: roots["cache"])
    monkeypatch.setattr(datasets, "SHARED_ROOTS", [roots["shared"]])
    with pytest.raises(datasets.DataNotFound) as missing:
        datasets.locate("multi30k", roots["given"])
    message = str(missing.value)
    assert "\n" not in message and message.endswith("get it with: s2s data get multi30k")
    for label in ("shared", "cache", "env", "given"):  # each new copy comes earlier in the order and wins
        datasets.get("multi30k", roots[label], progress=False, log=lambda *a: None)
        assert datasets.locate("multi30k", roots["given"]) == roots[label] / "multi30k"
    assert datasets.locate("multi30k") == roots["env"] / "multi30k"
    # a recipe's path: read as written when it exists; a missing path into a data root is found by name
    assert find_data("", str(roots["shared"] / "multi30k")) == str(roots["shared"] / "multi30k")
    assert find_data("", str(tmp_path / "gone" / "data" / "multi30k")) == str(roots["env"] / "multi30k")
    assert find_data("", "my/own.tsv") == "my/own.tsv"  # not a known corpus: the reader will say it is missing


def test_the_bundled_recipes_name_their_corpora():
    """Every recipe in configs/ names its corpora (no path into ../shared), so a fresh clone finds them by
    --data, S2S_DATA, the cache or ../shared/data, or says how to get them."""
    for config in sorted(Path("configs").glob("*.toml")):
        assert "_path" not in config.read_text(encoding="utf-8"), config
        recipe = Recipe.load(config)
        assert recipe.dataset, config
        assert (recipe.corpus == "mixed") == bool(recipe.tatoeba_dataset), config
        assert recipe.dataset in datasets.DATASETS
        assert not recipe.tatoeba_dataset or recipe.tatoeba_dataset in datasets.DATASETS
        try:
            found = with_data(recipe)
        except datasets.DataNotFound:
            continue  # a machine without the data: the message is tested above
        assert Path(found.data_path).exists() and (not found.tatoeba_path or Path(found.tatoeba_path).exists())


def test_a_fresh_checkout_trains_a_recipe_after_data_get(corpora, tmp_path, monkeypatch):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_RECIPE, encoding="utf-8")
    train = ["train", "--config", str(config), "--output", str(tmp_path / "model"), "--device", "cpu", "--quiet"]
    missing = run(train)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "s2s data get multi30k" in missing.stderr
    monkeypatch.setenv("S2S_DATA", str(tmp_path / "s2s-data"))
    got = run(["data", "get", "multi30k", "--quiet", "--mirror", f"{corpora.server.url}/mirror"])
    assert got.returncode == 0 and (tmp_path / "s2s-data" / "multi30k" / "train.en.gz").is_file()
    trained = run(train)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "model" / "model.safetensors").is_file()
    listed = run(["data", "list"])
    assert f"$S2S_DATA: {tmp_path / 's2s-data' / 'multi30k'}" in listed.stdout
    # --data: a folder filled with `s2s data get --dir`, searched first
    monkeypatch.delenv("S2S_DATA")
    assert run(train).returncode == 2
    assert run(["data", "get", "multi30k", "--quiet", "--dir", str(tmp_path / "d")]).returncode == 0
    assert run(train + ["--data", str(tmp_path / "d"), "--output", str(tmp_path / "model2")]).returncode == 0
