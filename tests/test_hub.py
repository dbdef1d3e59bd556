"""Hub integration end to end: the real huggingface_hub client against a local Hub (tests/hub_server.py).

No internet: HF_ENDPOINT points at a server on 127.0.0.1, the cache lives in tmp_path.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub import constants as hf_constants
from safetensors.torch import load_file, save_file

from hub_server import HubServer
from s2s.api import Translator
from s2s.hub import HubError, load, models_from_env, parse_model_list, parse_repo_id, parse_revision, push

ROOT = Path(__file__).resolve().parent.parent
OWNER_TOKEN, OTHER_TOKEN = "hf_user_write", "hf_other_write"
SENTENCES = ["A man rides a bike.", "Two dogs play in the snow.", "A girl is reading a book."]
CHECKPOINT_NAMES = ("config.json", "model.safetensors", "source.model", "target.model", "training.json")


@pytest.fixture(scope="module")
def hub():
    with HubServer() as server:
        yield server


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    """Point huggingface_hub at the local Hub with the owner's token and no saved login."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", OWNER_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("S2S_HUB_TIMEOUT", raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
    return monkeypatch


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture(scope="module")
def pushed(hub, tiny_checkpoint) -> str:
    """The tiny checkpoint pushed once to user/tiny (public) through s2s.hub.push."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", hub.url)
        push(tiny_checkpoint, "user/tiny", token=OWNER_TOKEN)
    return "user/tiny"


@pytest.fixture(scope="module")
def local_translations(tiny_checkpoint) -> list[str]:
    return Translator.load(tiny_checkpoint, device="cpu").translate_batch(SENTENCES)


def checkpoint_files(folder: Path, names=CHECKPOINT_NAMES) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names if (folder / name).exists()}


def altered_copy(source: Path, target: Path) -> Path:
    """A copy of the checkpoint with different weights (and scores), as a second training run would give."""
    shutil.copytree(source, target)
    weights = load_file(str(target / "model.safetensors"))
    weights = {k: (v * -1.5 if v.dtype.is_floating_point else v) for k, v in weights.items()}
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt", "library": "s2s"})
    metrics = {"toy/beam5": {"test_set": "toy", "decoding": "beam5", "bleu": 12.345, "chrf": 40.0,
                             "signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"}}
    (target / "metrics.json").write_text(json.dumps(metrics))
    return target


def same_weights(a: Translator, b: Translator) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------- load
def test_push_then_load_by_repo_id_matches_local_folder(env, hub, pushed, cache, local_translations):
    translator = load(pushed, device="cpu", cache_dir=cache)
    assert translator.name == "user/tiny"
    assert translator.translate_batch(SENTENCES) == local_translations
    # The URL form names the same repo (resolved against HF_ENDPOINT, here the local Hub).
    by_url = load("https://huggingface.co/user/tiny", device="cpu", cache_dir=cache)
    assert by_url.translate_batch(SENTENCES) == local_translations


def test_local_folder_spec_loads_without_the_hub(env, hub, tiny_checkpoint, local_translations):
    before = len(hub.requests)
    assert load(str(tiny_checkpoint), device="cpu").translate_batch(SENTENCES) == local_translations
    assert load(tiny_checkpoint, device="cpu").name == tiny_checkpoint.name  # a Path works too
    assert len(hub.requests) == before
    with pytest.raises(HubError, match="only applies to Hub repos"):
        load(str(tiny_checkpoint), revision="main")


def test_push_uploads_only_checkpoint_files_with_a_valid_card(env, hub, tiny_checkpoint, tmp_path):
    folder = altered_copy(tiny_checkpoint, tmp_path / "ckpt")
    (folder / "notes.txt").write_text("scratch")
    (folder / "model.pt").write_bytes(b"not for the Hub")
    url = push(folder, "user/carded")
    assert url == f"{hub.url}/user/carded"
    files = hub.files("user/carded")
    assert set(files) == {".gitattributes", "README.md", "metrics.json", *CHECKPOINT_NAMES}
    assert not (folder / "README.md").exists(), "push must not modify the local folder"

    card = ModelCard(files["README.md"].decode())
    data = card.data.to_dict()
    assert data["library_name"] == "s2s"
    assert data["language"] == ["en", "de"]
    assert {"translation", "en-de"} <= set(data["tags"])
    assert data["license"] and data["pipeline_tag"] == "translation"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"bleu": 12.35, "chrf": 40.0}
    assert "s2s translate --model user/carded" in card.text and 'load("user/carded")' in card.text


def test_fine_tuned_card_names_its_base_model(env, hub, tiny_checkpoint):
    push(tiny_checkpoint, "user/tuned", base_model="user/tiny", fine_tune={"pairs": 12, "epochs": 2, "lr": 1e-3})
    card = ModelCard(hub.files("user/tuned")["README.md"].decode())
    assert card.data.base_model == "user/tiny"
    assert "Fine-tuned in the s2s app from `user/tiny` on 12 user sentence pairs for 2 epochs" in card.text


def test_pinned_revision_returns_old_weights(env, hub, tiny_checkpoint, tmp_path, cache):
    push(tiny_checkpoint, "user/versions", commit_message="first")
    first = hub.head("user/versions")
    hub.tag("user/versions", "v1")
    push(altered_copy(tiny_checkpoint, tmp_path / "v2"), "user/versions", commit_message="second")
    assert hub.head("user/versions") != first

    original = Translator.load(tiny_checkpoint, device="cpu")
    latest = load("user/versions", device="cpu", cache_dir=cache)
    assert not same_weights(latest, original)
    for revision in (first, "v1"):
        old = load("user/versions", revision=revision, device="cpu", cache_dir=cache)
        assert same_weights(old, original), revision
        assert old.name == f"user/versions@{revision}"


def test_offline_mode_uses_the_cache_without_any_request(env, hub, pushed, cache, local_translations):
    load(pushed, device="cpu", cache_dir=cache)
    env.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    start = time.perf_counter()
    translator = load(pushed, device="cpu", cache_dir=cache)
    assert time.perf_counter() - start < 2.0
    assert len(hub.requests) == before
    assert translator.translate_batch(SENTENCES) == local_translations
    with pytest.raises(HubError, match="not in the local cache .*HF_HUB_OFFLINE=1"):
        load("user/never-downloaded", cache_dir=cache)
    assert len(hub.requests) == before


def test_unreachable_hub_falls_back_to_the_cache(env, pushed, cache, local_translations, caplog):
    load(pushed, device="cpu", cache_dir=cache)
    env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with caplog.at_level(logging.WARNING, logger="s2s.hub"):
        translator = load(pushed, device="cpu", cache_dir=cache)
    assert translator.translate_batch(SENTENCES) == local_translations
    assert "using the cached copy of user/tiny" in caplog.text


def test_hub_outage_uses_the_cache_or_says_so(env, hub, pushed, cache, local_translations):
    load(pushed, device="cpu", cache_dir=cache)
    hub.outage = True
    try:
        assert load(pushed, device="cpu", cache_dir=cache).translate_batch(SENTENCES) == local_translations
        with pytest.raises(HubError, match=r"\(HTTP 503\) and user/other is not in the local cache"):
            load("user/other", cache_dir=cache)
    finally:
        hub.outage = False


def test_unreachable_hub_without_cache_fails_fast(env, cache):
    env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    start = time.perf_counter()
    with pytest.raises(HubError, match="cannot reach the Hub at .*not in the local cache"):
        load("user/tiny", cache_dir=cache)
    assert time.perf_counter() - start < 5.0


def test_silent_hub_fails_fast(env, cache):
    """A host that accepts connections but never answers (a hung proxy or server) is given up on in time."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes handshakes; nobody ever reads or answers
        env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.perf_counter()
        with pytest.raises(HubError, match="cannot reach the Hub"):
            load("user/tiny", cache_dir=cache)
        assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------------------------- errors
def test_repo_not_found(env, cache):
    with pytest.raises(HubError, match="user/missing was not found on .*this token has no access"):
        load("user/missing", cache_dir=cache)
    env.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="user/missing was not found on .*pass --token, set HF_TOKEN"):
        load("user/missing", cache_dir=cache)


def test_private_repo_needs_the_owners_token(env, hub, tiny_checkpoint, cache, local_translations):
    hub.upload("user/private", checkpoint_files(tiny_checkpoint), private=True)
    env.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="If it is private or gated, log in"):
        load("user/private", cache_dir=cache)
    with pytest.raises(HubError, match="this token has no access"):
        load("user/private", token=OTHER_TOKEN, cache_dir=cache)
    owned = load("user/private", token=OWNER_TOKEN, device="cpu", cache_dir=cache)
    assert owned.translate_batch(SENTENCES) == local_translations


def test_gated_repo_explains_what_to_do(env, hub, tiny_checkpoint, cache):
    hub.upload("user/gated", checkpoint_files(tiny_checkpoint), gated=True)
    env.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="user/gated is gated: accept its conditions"):
        load("user/gated", cache_dir=cache)
    with pytest.raises(HubError, match="is gated"):
        load("user/gated", token=OTHER_TOKEN, cache_dir=cache)


def test_rejected_token(env, pushed, cache):
    with pytest.raises(HubError, match="rejected the token"):
        load(pushed, token="hf_expired", cache_dir=cache)


def test_revision_not_found(env, pushed, cache):
    with pytest.raises(HubError, match="user/tiny@no-such-branch: no such revision"):
        load(pushed, revision="no-such-branch", cache_dir=cache)
    with pytest.raises(HubError, match="invalid revision"):
        load(pushed, revision="two words", cache_dir=cache)


def test_revision_is_a_branch_tag_or_sha_never_a_path(env, hub, pushed, cache, tmp_path, tiny_checkpoint):
    """Issue 11, item 5: with the Hub unreachable and a repo cached, revision='../../…' (naming a file that
    names a folder) loaded an arbitrary server folder as a model."""
    load(pushed, device="cpu", cache_dir=cache)
    storage = cache / "models--user--tiny"
    evil = shutil.copytree(tiny_checkpoint, tmp_path / "uploads" / "evil")
    pointer = tmp_path / "uploads" / "pointer.txt"  # read as the commit of a ref: points at the folder
    pointer.write_text(os.path.relpath(evil, storage / "snapshots"))
    traversal = os.path.relpath(pointer, storage / "refs")
    env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    for bad in (traversal, "../x", "/etc", "a//b", "main/", ".hidden", "a/..b", "x.lock", "a\\b", "x" * 300,
                "two words", "", "v1\n"):
        with pytest.raises(HubError, match="invalid revision") as err:
            load(pushed, revision=bad, device="cpu", cache_dir=cache)
        assert len(str(err.value)) < 100 + 200, bad  # at most ~100 characters of the input are echoed
    for good in ("main", "v1.0", "refs/pr/1", "feature/x-1_2", "a" * 40, "0123456789abcdef" * 2 + "01234567"):
        assert parse_revision(good) == good


def test_a_cached_snapshot_outside_the_cache_is_refused(env, pushed, cache, tmp_path, tiny_checkpoint):
    """A poisoned cache (refs/main naming a folder elsewhere) is refused, not loaded."""
    load(pushed, device="cpu", cache_dir=cache)
    storage = cache / "models--user--tiny"
    evil = shutil.copytree(tiny_checkpoint, tmp_path / "elsewhere" / "evil")
    (storage / "refs" / "main").write_text(os.path.relpath(evil, storage / "snapshots"))
    env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(HubError, match="outside the Hugging Face cache"):
        load(pushed, device="cpu", cache_dir=cache)
    env.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="outside the Hugging Face cache"):
        load(pushed, device="cpu", cache_dir=cache)


def test_the_app_loads_hub_repos_only_never_a_server_folder(env, tmp_path, tiny_checkpoint):
    """A repo id that happens to name a folder on the server (relative to its working directory) is looked
    up on the Hub: the Model tab never loads a server folder, nor says whether one exists."""
    from s2s import service

    shutil.copytree(tiny_checkpoint, tmp_path / "server" / "models")
    env.chdir(tmp_path)
    env.setenv("HF_HUB_OFFLINE", "1")
    env.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "app-cache"))
    for spec in ("server/models", "server/missing"):
        with pytest.raises(service.UserError, match="not in the local cache") as err:
            service.load_from_hub(spec, None, service.Session())
        assert "folder" not in str(err.value)
    with pytest.raises(service.UserError, match="Invalid revision") as err:
        service.load_from_hub("user/tiny", "../../" + "x" * 5000, service.Session())
    assert len(str(err.value)) < 400


@pytest.mark.parametrize("files, message", [
    (lambda f: {k: v for k, v in f.items() if k != "config.json"}, "the repo has no config.json"),
    (lambda f: {k: v for k, v in f.items() if not k.endswith(".model")}, "has no source.model, target.model"),
    (lambda f: {k: v for k, v in f.items() if k != "model.safetensors"}, "has no model.safetensors"),
    (lambda f: {**f, "README.md": b"---\nlibrary_name: transformers\n---\n# a BERT\n"},
     "not an s2s checkpoint: its model card says library_name: transformers"),
], ids=["no-config", "no-tokenizers", "no-weights", "other-library"])
def test_not_an_s2s_checkpoint(env, hub, tiny_checkpoint, cache, files, message, request):
    repo_id = f"user/not-s2s-{request.node.callspec.id}"
    hub.upload(repo_id, files(checkpoint_files(tiny_checkpoint)))
    before = len(hub.requests)
    with pytest.raises(HubError, match=message):
        load(repo_id, cache_dir=cache)
    assert not [r for r in hub.requests[before:] if "/resolve/" in r], "nothing is downloaded from such a repo"


def test_unknown_config_version_is_refused_before_the_weights(env, hub, tiny_checkpoint, cache):
    files = checkpoint_files(tiny_checkpoint)
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, "version": 2}).encode()
    hub.upload("user/future", files)
    before = len(hub.requests)
    with pytest.raises(HubError, match="config version 2 is not supported"):
        load("user/future", cache_dir=cache)
    assert not [r for r in hub.requests[before:] if r.endswith("model.safetensors")]


def test_weights_not_matching_config(env, hub, tiny_checkpoint, cache):
    files = checkpoint_files(tiny_checkpoint)
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, "hidden_size": config["hidden_size"] + 16}).encode()
    hub.upload("user/mismatch", files)
    with pytest.raises(HubError, match=r"user/mismatch: weights do not match config.json \(.*wrong shape"):
        load("user/mismatch", cache_dir=cache)


def test_pickle_only_repo_is_refused_and_never_downloaded(env, hub, tiny_checkpoint, cache):
    files = {k: v for k, v in checkpoint_files(tiny_checkpoint).items() if k != "model.safetensors"}
    files["pytorch_model.bin"] = b"\x80\x04pickle that would run code"
    hub.upload("user/pickled", files)
    with pytest.raises(HubError, match=r"only pickle weights \(pytorch_model.bin\); s2s loads safetensors only"):
        load("user/pickled", cache_dir=cache)
    assert not [r for r in hub.requests if "pytorch_model.bin" in r]


@pytest.mark.parametrize("spec", [
    "../x", "./missing-folder", "user/repo name", "a/b/c", "user//repo", "justaname", "", "  ", "user/re..po",
    "-user/repo", "user/repo.git", "http://huggingface.co/user/repo", "https://example.com/user/repo",
    "https://huggingface.co/user", "https://huggingface.co/user/repo?x=1", "u" * 60 + "/" + "r" * 60,
])
def test_malformed_specs_are_rejected_without_network(env, hub, spec):
    before = len(hub.requests)
    with pytest.raises(HubError) as err:
        load(spec)
    assert str(err.value) and "Traceback" not in str(err.value)
    assert len(hub.requests) == before


def test_tree_url_suggests_revision():
    with pytest.raises(HubError, match="--revision v1"):
        parse_repo_id("https://huggingface.co/user/repo/tree/v1")
    assert parse_repo_id(" https://huggingface.co/user/repo/ ") == "user/repo"
    assert parse_repo_id("User-1/my_model.v2") == "User-1/my_model.v2"


# ---------------------------------------------------------------------------------------------- push errors
def test_push_errors(env, hub, tiny_checkpoint, tmp_path):
    with pytest.raises(HubError, match="cannot push: .* is not an s2s checkpoint"):
        push(tmp_path, "user/empty")
    with pytest.raises(HubError, match="not a valid Hub repo id"):
        push(tiny_checkpoint, "user/bad name")
    with pytest.raises(HubError, match="may not write to this repo"):
        push(tiny_checkpoint, "other/stolen")
    with pytest.raises(HubError, match="rejected the token"):
        push(tiny_checkpoint, "user/x", token="hf_expired")
    hub.upload("user/a-bert", {"README.md": "---\nlibrary_name: transformers\n---\n"})
    with pytest.raises(HubError, match="already holds a transformers model"):
        push(tiny_checkpoint, "user/a-bert")
    push(tiny_checkpoint, "user/public")
    with pytest.raises(HubError, match="already exists and is public"):
        push(tiny_checkpoint, "user/public", private=True)
    env.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="needs a Hugging Face token with write access"):
        push(tiny_checkpoint, "user/x")
    assert "other/stolen" not in hub.repos and "user/x" not in hub.repos


def test_push_private_then_load(env, hub, tiny_checkpoint, cache, local_translations):
    push(tiny_checkpoint, "user/secret", private=True)
    assert hub.repos["user/secret"].private
    assert load("user/secret", device="cpu", cache_dir=cache).translate_batch(SENTENCES) == local_translations


def test_push_fails_fast_when_unreachable(env, tiny_checkpoint):
    env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    start = time.perf_counter()
    with pytest.raises(HubError, match="cannot reach the Hub .*nothing was pushed"):
        push(tiny_checkpoint, "user/offline")
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------------------------- S2S_MODELS
def test_models_from_env(monkeypatch, caplog):
    monkeypatch.setenv("S2S_MODELS", " user/a , user/b,,\n bad..id  https://huggingface.co/user/c user/a ../x")
    with caplog.at_level(logging.WARNING, logger="s2s.hub"):
        assert models_from_env() == ["user/a", "user/b", "user/c"]
    assert "bad..id" in caplog.text and "../x" in caplog.text
    monkeypatch.delenv("S2S_MODELS")
    assert models_from_env() == []
    models, problems = parse_model_list("user/a,nope")
    assert models == ["user/a"] and len(problems) == 1 and "'nope' is not a valid Hub repo id" in problems[0]


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_push_then_translate_by_repo_id(hub, tiny_checkpoint, tmp_path, local_translations):
    hf_home = tmp_path / "hf-home"
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(hf_home), "HF_TOKEN": OWNER_TOKEN,
           "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "s2s.cli"]
    pushed = subprocess.run([*cli, "push", str(tiny_checkpoint), "user/cli-tiny"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == f"{hub.url}/user/cli-tiny"
    translated = subprocess.run([*cli, "translate", "--model", "user/cli-tiny", "--device", "cpu"], env=env,
                                input=SENTENCES[0] + "\n", capture_output=True, text=True, timeout=120)
    assert translated.returncode == 0, translated.stderr
    assert translated.stdout.splitlines() == local_translations[:1]
    missing = subprocess.run([*cli, "translate", "--model", "user/nothing-here"], env=env, input="Hi.\n",
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert "s2s translate: error: user/nothing-here was not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    # The token is used, never printed or written to disk by s2s (nor by the client, in HF_HOME).
    for output in (pushed, translated, missing):
        assert OWNER_TOKEN not in output.stdout + output.stderr
    assert not [p for p in hf_home.rglob("*") if p.is_file() and OWNER_TOKEN.encode() in p.read_bytes()]


def test_app_model_tab_loads_a_repo_id_from_the_hub(env, pushed, tmp_path, local_translations):
    """The app's Model tab (service.load_from_hub) with the real s2s.hub against the local Hub."""
    from s2s import service

    env.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "app-cache"))
    session = service.Session()
    result = service.load_from_hub(f"https://huggingface.co/{pushed}", None, session)
    assert result["selected"] == pushed and pushed in result["choices"]
    assert pushed not in service.model_choices(service.Session())  # only this browser session sees it
    translated = service.translate(pushed, SENTENCES[0], session=result["session"])
    assert translated["translation"] == local_translations[0]
    with pytest.raises(service.UserError, match="not found|does not exist"):
        service.load_from_hub("user/no-such-model", None, session)
