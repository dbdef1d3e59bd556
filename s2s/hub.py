"""Load s2s checkpoints from the Hugging Face Hub (or a folder) and publish them with a model card.

A checkpoint folder is exactly what a Hub repo holds (see s2s.checkpoint), so loading from the Hub is
"download those files into the standard cache, then load the folder with the same strict checks".
Before downloading, the repo's file list and model card are checked so that a repo that is not an s2s
checkpoint, or has pickle weights only, is refused by name without fetching anything big; a pickle is
never downloaded at all (allow_patterns lists the safetensors file only).

Network behaviour:
- ``HF_HUB_OFFLINE=1``: the cache only, no request at all.
- The first request (model metadata) runs under a hard deadline (HUB_TIMEOUT_S), so an unreachable Hub
  (refused, no DNS, packets dropped, a server that never answers) is noticed in seconds instead of the
  client's ~23 s of retries per file; then the cached copy is used if there is one, else a HubError
  says what happened.
- ``HF_ENDPOINT`` is read at call time (huggingface_hub reads it once at import), so a mirror or a
  test server can be chosen per call.
Tokens come from the argument, else ``HF_TOKEN`` / the saved ``hf auth login`` token (huggingface_hub's
own lookup); they are only ever handed to huggingface_hub, never logged or written by s2s.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import HfApi, get_token, hf_hub_download, snapshot_download
from huggingface_hub import constants as hf_constants
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:  # huggingface_hub 2.x ships its HTTP stack as httpx2; 1.x used httpx
    from httpx2 import TransportError
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    from httpx import TransportError

from .api import Translator
from .card import METRICS_FILE, model_card, validate_card
from .checkpoint import (
    CARD_FILE,
    CONFIG_FILE,
    PICKLE_SUFFIXES,
    SOURCE_TOKENIZER,
    TARGET_TOKENIZER,
    TRAINING_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
)
from .config import Config, ConfigError
from .deadline import DeadlineExceeded, call_with_deadline
from .repo_id import HubError, models_from_env, parse_model_list, parse_repo_id, parse_revision  # noqa: F401

logger = logging.getLogger(__name__)

# Exactly the files an s2s checkpoint consists of: nothing else is downloaded or uploaded.
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, SOURCE_TOKENIZER, TARGET_TOKENIZER, CARD_FILE, TRAINING_FILE,
                    METRICS_FILE)
# Seconds the first request may take before the Hub counts as unreachable (S2S_HUB_TIMEOUT overrides it
# for slow links). Metadata answers take well under a second on a working connection; 3 s keeps a
# "no network" failure under 5 s.
HUB_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


# ---------------------------------------------------------------------------------------------- names
def _local_folder(spec: str) -> Path | None:
    """The folder `spec` names, None when it should be read as a repo id; HubError for a bad path."""
    if not spec.strip():
        return None  # Path("") is the working directory; an empty name is an error, not "here"
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    looks_like_path = spec.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in spec or spec in (".", "..")
    if path.exists():
        raise HubError(f"{spec} is a file; a checkpoint is a folder (config.json, model.safetensors, ...)")
    if looks_like_path:
        raise HubError(f"no such checkpoint folder: {spec}")
    return None


# ---------------------------------------------------------------------------------------------- settings
def _endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub froze its copy at import time)."""
    return (os.environ.get("HF_ENDPOINT") or hf_constants.ENDPOINT).rstrip("/")


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in _TRUE
    return bool(hf_constants.HF_HUB_OFFLINE)


def _timeout() -> float:
    try:
        value = float(os.environ.get("S2S_HUB_TIMEOUT") or HUB_TIMEOUT_S)
    except ValueError:
        raise HubError(f"S2S_HUB_TIMEOUT must be a number of seconds, got {os.environ['S2S_HUB_TIMEOUT']!r}") from None
    return value if value > 0 else HUB_TIMEOUT_S


def _token(token: str | None) -> str | None:
    """The explicit token, else huggingface_hub's own lookup (HF_TOKEN, then the saved login)."""
    return token or get_token()


def _label(repo_id: str, revision: str | None) -> str:
    """user/repo[@revision] for messages, cut to 100 characters (both come from the user)."""
    label = repo_id if revision is None else f"{repo_id}@{revision}"
    return label if len(label) <= 100 else label[:99] + "…"


def _as_hub_error(err: Exception, label: str, token: str | None, action: str = "load") -> Exception:
    """The HubError that explains a huggingface_hub exception (other exceptions are returned unchanged)."""
    if isinstance(err, GatedRepoError):
        return HubError(f"{label} is gated: accept its conditions on its Hub page, then use a token of that "
                        "account (--token or HF_TOKEN)")
    if isinstance(err, RevisionNotFoundError):
        return HubError(f"{label}: no such revision (branch, tag or commit) in this repo")
    if isinstance(err, RepositoryNotFoundError):
        return HubError(_not_found(label, token))
    if isinstance(err, RemoteEntryNotFoundError):
        return HubError(f"{label}: a file is missing from the repo ({err.response.url})")
    if isinstance(err, HfHubHTTPError):
        return HubError(_http_message(label, err, action))
    if isinstance(err, (TransportError, OfflineModeIsEnabled, LocalEntryNotFoundError)):
        return HubError(f"{label}: the Hub at {_endpoint()} could not be reached while {action}ing "
                        f"({_reason(err)}); try again when the connection is back")
    return err


@contextmanager
def _hub_errors(label: str, token: str | None, action: str = "load") -> Iterator[None]:
    """Re-raise huggingface_hub's exceptions as HubErrors whose message says what to do."""
    try:
        yield
    except HubError:
        raise
    except (HfHubHTTPError, TransportError, OfflineModeIsEnabled, LocalEntryNotFoundError) as err:
        raise _as_hub_error(err, label, token, action) from None


def _not_found(label: str, token: str | None) -> str:
    if token:
        return (f"{label} was not found on {_endpoint()}, or it is private and this token has no access to it "
                "(check the spelling and the token's permissions)")
    return (f"{label} was not found on {_endpoint()}. If it is private or gated, log in: pass --token, set "
            "HF_TOKEN, or run `hf auth login`")


def _http_message(label: str, err: HfHubHTTPError, action: str) -> str:
    status = err.response.status_code
    if status == 401:
        return (f"{label}: the Hub rejected the token (invalid or expired); create a new one at "
                "https://huggingface.co/settings/tokens")
    if status == 403:
        what = "write to" if action == "push" else "read"
        return (f"{label}: this token may not {what} this repo (HTTP 403); use a token with "
                f"{'write' if action == 'push' else 'read'} access to its namespace")
    if status == 429:
        return f"{label}: the Hub is rate-limiting requests (HTTP 429); try again in a minute"
    if status == 404:  # a real Hub says what was not found (X-Error-Code); a bare 404 is another server
        return (f"{label}: {_endpoint()} answered HTTP 404 without Hub error details; check that HF_ENDPOINT "
                "points at a Hugging Face Hub")
    return f"{label}: the Hub at {_endpoint()} answered HTTP {status} while {action}ing ({err.response.url})"


# ---------------------------------------------------------------------------------------------- loading
def load(spec: str, revision: str | None = None, token: str | None = None, device: str = "auto",
         cache_dir: str | Path | None = None, local: bool = True) -> Translator:
    """A Translator from a local checkpoint folder, a Hub repo id (user/repo) or https://huggingface.co/user/repo.

    An existing folder wins over a repo id of the same spelling, unless local=False (the app: a visitor
    names Hub repos only, never a folder of the server). revision pins a branch, tag or commit of
    a Hub repo. With HF_HUB_OFFLINE=1 only the cache is used; when the Hub cannot be reached the cached
    copy is used (with a warning). Raises HubError (a ValueError) with a clear message when the model
    cannot be found, reached, or is not a usable s2s checkpoint (CheckpointError for a bad local folder).
    """
    folder = (None if not local else Path(spec) if isinstance(spec, os.PathLike) else
              _local_folder(spec) if isinstance(spec, str) else None)
    if folder is not None:
        if revision:
            raise HubError(f"{spec} is a local folder; --revision only applies to Hub repos")
        return Translator.load(folder, device=device)
    repo_id = parse_repo_id(spec)
    label = _label(repo_id, revision)
    snapshot = download(repo_id, revision=revision, token=token, cache_dir=cache_dir)
    try:
        return Translator.load(snapshot, device=device, name=label)
    except CheckpointError as err:
        raise HubError(str(err).replace(str(snapshot), label)) from None


def download(spec: str, revision: str | None = None, token: str | None = None,
             cache_dir: str | Path | None = None) -> Path:
    """Fetch an s2s checkpoint repo into the Hugging Face cache; returns the snapshot folder.

    Checks the repo before fetching big files: its file list (config, weights, tokenizers; pickles
    refused), its card's library_name and its config version.
    """
    repo_id, revision = parse_repo_id(spec), parse_revision(revision)
    label = _label(repo_id, revision)
    token = _token(token)
    if _offline():
        return _from_cache(repo_id, revision, cache_dir, None)
    api = HfApi(endpoint=_endpoint(), token=token)
    try:
        info = call_with_deadline(lambda: api.model_info(repo_id, revision=revision, timeout=_timeout()),
                              _timeout() + 0.5)
    except (TransportError, OfflineModeIsEnabled, DeadlineExceeded) as err:
        return _from_cache(repo_id, revision, cache_dir, err)
    except HfHubHTTPError as err:
        if err.response.status_code >= 500:  # the Hub is down: a cached copy is still good
            return _from_cache(repo_id, revision, cache_dir, err)
        raise _as_hub_error(err, label, token) from None
    _check_listing(label, info)
    # The Hub has just answered, so the downloads keep huggingface_hub's own timeouts and retries.
    kwargs = dict(repo_id=repo_id, cache_dir=cache_dir, token=token, endpoint=_endpoint())
    with _hub_errors(label, token):
        # The config first, pinned to the commit just inspected: an unsupported config is refused
        # before the weights are fetched.
        config_path = hf_hub_download(filename=CONFIG_FILE, revision=info.sha, **kwargs)
        try:
            Config.load(config_path)
        except (ConfigError, UnicodeDecodeError) as err:
            raise HubError(f"{label} is not a checkpoint this s2s can load: config.json: {err}") from None
        # By the requested name (not the sha) so the cache records branch/tag -> commit for offline use.
        folder = snapshot_download(revision=revision, allow_patterns=list(CHECKPOINT_FILES), **kwargs)
    return _inside_cache(Path(folder), repo_id, label, cache_dir)


def _check_listing(label: str, info) -> None:
    """Refuse, by name, a repo that is not an s2s checkpoint, before downloading anything from it."""
    card = info.card_data.to_dict() if info.card_data is not None else {}
    library = info.library_name or card.get("library_name")
    if library and library != "s2s":
        raise HubError(f"{label} is not an s2s checkpoint: its model card says library_name: {library}")
    if info.siblings is None:
        return  # the listing was not sent; the strict load names any missing file
    files = {s.rfilename for s in info.siblings}
    if WEIGHTS_FILE not in files:
        pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
        if pickles:
            raise HubError(f"{label} has only pickle weights ({', '.join(pickles)}); s2s loads safetensors only, "
                           "because loading a pickle can run arbitrary code. Convert it to model.safetensors")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, SOURCE_TOKENIZER, TARGET_TOKENIZER) if name not in files]
    if missing:
        raise HubError(f"{label} is not an s2s checkpoint: the repo has no {', '.join(missing)}")


def _from_cache(repo_id: str, revision: str | None, cache_dir: str | Path | None, error: Exception | None) -> Path:
    """The cached snapshot, when offline (error None) or when the Hub cannot be reached (error given)."""
    label = _label(repo_id, revision)
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True,
                                   allow_patterns=list(CHECKPOINT_FILES))
    except (LocalEntryNotFoundError, OSError, ValueError):
        cache = cache_dir or hf_constants.HF_HUB_CACHE
        if error is None:
            raise HubError(f"{label} is not in the local cache ({cache}) and HF_HUB_OFFLINE=1 forbids "
                           "downloading it; load it once online first, or unset HF_HUB_OFFLINE") from None
        raise HubError(f"cannot reach the Hub at {_endpoint()} ({_reason(error)}) and {label} is not in the local "
                       f"cache ({cache}). Check the network or HF_ENDPOINT; set HF_HUB_OFFLINE=1 to use cached "
                       "models only") from None
    folder = _inside_cache(Path(folder), repo_id, label, cache_dir)
    if error is not None:
        logger.warning("The Hub at %s cannot be reached (%s); using the cached copy of %s",
                       _endpoint(), _reason(error), label)
    return folder


def _inside_cache(folder: Path, repo_id: str, label: str, cache_dir: str | Path | None) -> Path:
    """`folder` if it, and every checkpoint file in it, resolves to a path inside this repo's cache folder.

    huggingface_hub finds a snapshot by joining a commit read from refs/<revision> onto the cache, so a
    poisoned refs file or a link could point anywhere on the server.
    """
    root = (Path(cache_dir or hf_constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model"))
    root = root.resolve()
    paths = [folder, *(folder / name for name in CHECKPOINT_FILES if (folder / name).is_symlink()
                       or (folder / name).exists())]
    if not all(path.resolve().is_relative_to(root) for path in paths):
        raise HubError(f"{label}: the cached snapshot lies outside the Hugging Face cache folder of this repo; "
                       "refusing to load it (delete the repo from the cache and load it again)")
    return folder


def _reason(error: Exception) -> str:
    if isinstance(error, HfHubHTTPError):
        return f"HTTP {error.response.status_code}"
    detail = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


# ---------------------------------------------------------------------------------------------- pushing
def push(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False,
         commit_message: str | None = None, base_model: str | None = None, fine_tune: dict | None = None) -> str:
    """Publish a checkpoint folder as a Hub model repo with a fresh model card; returns the repo URL.

    The folder must load (strict checks) before anything is sent. The card is generated from config.json,
    training.json and metrics.json (base_model / fine_tune default to training.json's entries) and its
    metadata is validated. Only the checkpoint files are uploaded; the local folder is not modified.
    """
    folder = Path(folder)
    try:
        model, _, _ = load_checkpoint(folder, "cpu")
    except CheckpointError as err:
        raise HubError(f"cannot push: {err}") from None
    repo_id = parse_repo_id(repo_id)
    token = _token(token)
    if not token:
        raise HubError("pushing needs a Hugging Face token with write access: pass --token, set HF_TOKEN, or run "
                       "`hf auth login` (tokens: https://huggingface.co/settings/tokens)")
    training, metrics = _read_json(folder / TRAINING_FILE), _read_json(folder / METRICS_FILE)
    fine_tune = fine_tune or training.get("fine_tune") or None
    # The app records the model it fine-tuned from as fine_tune["base"]; a bundled name (not a repo id) is
    # only named in the card's text, never in its base_model metadata.
    base_model = (base_model or training.get("base_model") or (fine_tune or {}).get("base_model")
                  or (fine_tune or {}).get("base"))
    card = model_card(model.config, training, metrics, repo_id=repo_id, base_model=base_model, fine_tune=fine_tune)
    try:
        validate_card(card, model.config)
    except ValueError as err:
        raise HubError(f"the generated model card is invalid: {err}") from None

    api = HfApi(endpoint=_endpoint(), token=token)
    url = f"{_endpoint()}/{repo_id}"
    with _hub_errors(repo_id, token, action="push"):
        _check_target(api, repo_id, private)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        with tempfile.TemporaryDirectory(prefix="s2s-push-") as staging:
            for name in CHECKPOINT_FILES:
                if name != CARD_FILE and (folder / name).is_file():
                    _link_or_copy(folder / name, Path(staging) / name)
            (Path(staging) / CARD_FILE).write_text(card, encoding="utf-8")
            message = commit_message or (f"Upload s2s {model.config.src_lang}→{model.config.tgt_lang} checkpoint")
            commit = api.upload_folder(folder_path=staging, repo_id=repo_id, repo_type="model",
                                       commit_message=message, allow_patterns=list(CHECKPOINT_FILES))
    logger.info("pushed %s to %s (commit %s)", folder, url, getattr(commit, "oid", "?"))
    return url


def _check_target(api: HfApi, repo_id: str, private: bool) -> None:
    """Reach the Hub quickly, and refuse to overwrite a non-s2s repo or to publish into a public repo
    when private was asked for."""
    try:
        info = call_with_deadline(lambda: api.model_info(repo_id, timeout=_timeout()), _timeout() + 0.5)
    except (TransportError, OfflineModeIsEnabled, DeadlineExceeded) as err:
        raise HubError(f"cannot reach the Hub at {_endpoint()} ({_reason(err)}); nothing was pushed") from None
    except HfHubHTTPError:
        return  # a new repo (404) or one this token cannot read: create_repo gives the real answer
    library = info.library_name or (info.card_data.to_dict() if info.card_data else {}).get("library_name")
    if library and library != "s2s":
        raise HubError(f"{repo_id} already holds a {library} model; push the s2s checkpoint to another repo")
    if private and info.private is False:
        raise HubError(f"{repo_id} already exists and is public; --private does not change an existing repo. "
                       "Make it private in its settings first, or push to a new repo")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HubError(f"{path} is not valid JSON: {err}") from None
    return data if isinstance(data, dict) else {}


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard links keep pushing a large checkpoint cheap; copy where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
