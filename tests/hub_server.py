"""A local HTTP server that speaks the parts of the Hugging Face Hub protocol that `huggingface_hub` uses.

Tests point ``HF_ENDPOINT`` at it and run the real client end to end, with no internet:

    download  GET  /api/models/{repo}[/revision/{rev}]        model_info / repo_info (sha, siblings, cardData)
              GET  /api/models/{repo}/tree/{rev}[/{path}]     list_repo_tree (snapshot_download)
              HEAD /{repo}/resolve/{rev}/{path}               hf_hub_download metadata: X-Repo-Commit, ETag, size
              GET  /{repo}/resolve/{rev}/{path}               file bytes (Range supported)
    upload    POST /api/repos/create                          create_repo (409 + url when it exists)
              POST /api/models/{repo}/preupload/{rev}         answers "regular" for every file, so the client
                                                              sends contents inline (no LFS, no Xet)
              POST /api/models/{repo}/commit/{rev}            ndjson: header, file (base64), deletedFile/Folder
              POST /api/validate-yaml                         README metadata check (legacy create_commit path)

Errors carry the headers the client turns into typed exceptions: 404 ``X-Error-Code: RepoNotFound`` /
``RevisionNotFound`` / ``EntryNotFound``, 401 for private repos without the owner's token, 401/403
``GatedRepo`` for gated files. Repos live in memory as real commits (one sha per commit, parent links,
branches and tags), so pinned revisions resolve to old files. Every request is logged in ``requests``
so tests can assert what the client did (and did not) fetch.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TOKENS = {"hf_user_write": "user", "hf_other_write": "other"}  # token -> user name
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob, which is what the Hub reports as a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, bytes]
    message: str
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    gated: bool = False
    approved: set[str] = field(default_factory=set)  # users who accepted a gated repo's conditions
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str = ""

    def resolve(self, revision: str) -> Commit | None:
        sha = self.branches.get(revision) or self.tags.get(revision)
        if sha is None and SHA_RE.match(revision):
            sha = revision
        return self.commits.get(sha) if sha else None


class HubError(Exception):
    """An HTTP error answer: status, X-Error-Code and message."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class HubServer:
    """In-memory Hub on 127.0.0.1:<free port>; use as a context manager or call start()/stop()."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = dict(TOKENS if tokens is None else tokens)
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []  # "METHOD /path" of every request, in order
        self.outage = False  # True: answer every request 503, like a Hub that is down
        self.lock = threading.RLock()
        self._counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "HubServer":
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ direct repo manipulation for tests
    def create_repo(self, repo_id: str, private: bool = False, gated: bool = False) -> Repo:
        """Create a repo with the initial commit the Hub makes (.gitattributes only)."""
        with self.lock:
            if repo_id in self.repos:
                return self.repos[repo_id]
            repo = Repo(repo_id, private=private, gated=gated, created_at=_now())
            self.repos[repo_id] = repo
            self._commit(repo, "main", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                         (), "initial commit")
            return repo

    def upload(self, repo_id: str, files: dict[str, bytes | str], message: str = "upload", branch: str = "main",
               private: bool = False, gated: bool = False) -> str:
        """Commit files straight into a repo (created if needed); returns the commit sha."""
        with self.lock:
            repo = self.create_repo(repo_id, private=private, gated=gated)
            data = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
            return self._commit(repo, branch, data, (), message).sha

    def tag(self, repo_id: str, tag: str, revision: str = "main") -> str:
        with self.lock:
            repo = self.repos[repo_id]
            commit = repo.resolve(revision)
            assert commit is not None, f"no revision {revision}"
            repo.tags[tag] = commit.sha
            return commit.sha

    def head(self, repo_id: str, branch: str = "main") -> str:
        return self.repos[repo_id].branches[branch]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].resolve(revision)
        assert commit is not None
        return dict(commit.files)

    def commit_count(self, repo_id: str) -> int:
        return len(self.repos[repo_id].commits)

    # ------------------------------------------------------------------ internals
    def _commit(self, repo: Repo, branch: str, add: dict[str, bytes], delete: tuple[str, ...], message: str,
                folders: tuple[str, ...] = ()) -> Commit:
        parent_sha = repo.branches.get(branch)
        files = dict(repo.commits[parent_sha].files) if parent_sha else {}
        for path in delete:
            files.pop(path, None)
        for folder in folders:
            prefix = folder.rstrip("/") + "/"
            files = {p: c for p, c in files.items() if not p.startswith(prefix)}
        files.update(add)
        # A commit id must be unique even for identical trees, like git's (which hashes time and parent).
        digest = hashlib.sha1(json.dumps([parent_sha, sorted((p, git_blob_oid(c)) for p, c in files.items()),
                                          message, next(self._counter)]).encode()).hexdigest()
        commit = Commit(digest, parent_sha, files, message, _now())
        repo.commits[digest] = commit
        repo.branches[branch] = digest
        return commit

    def user_for(self, authorization: str | None) -> tuple[str | None, bool]:
        """(user, token_given): user is None when no token was sent or the token is unknown."""
        if not authorization:
            return None, False
        token = authorization.removeprefix("Bearer ").strip()
        return self.tokens.get(token), True

    def readable_repo(self, repo_id: str, authorization: str | None) -> Repo:
        user, token_given = self.user_for(authorization)
        if token_given and user is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            # The Hub answers 401 to anonymous requests and 404 to the wrong user, never revealing existence.
            raise HubError(401 if user is None else 404, "RepoNotFound", "Repository not found")
        return repo

    def writable_repo(self, repo_id: str, authorization: str | None) -> Repo:
        self._writer(repo_id.split("/")[0], authorization)
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def _writer(self, namespace: str, authorization: str | None) -> str:
        user, token_given = self.user_for(authorization)
        if user is None:
            raise HubError(401, None, "Invalid credentials in Authorization header" if token_given
                           else "Invalid username or password.")
        if user != namespace:
            raise HubError(403, None, f"You don't have the rights to write to the namespace {namespace}")
        return user


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _card_data(files: dict[str, bytes]) -> dict | None:
    """YAML front matter of README.md, as the Hub exposes it in cardData."""
    text = files.get("README.md", b"").decode("utf-8", "replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

    def log_message(self, format: str, *args) -> None:  # quiet: tests read hub.requests instead
        pass

    # ------------------------------------------------------------------ plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None, head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _json(self, status: int, data, head_only: bool = False) -> None:
        self._send(status, json.dumps(data).encode(), head_only=head_only)

    def _error(self, err: HubError, head_only: bool = False) -> None:
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        if err.commit:
            headers["X-Repo-Commit"] = err.commit
        self._send(err.status, json.dumps({"error": err.message}).encode(), headers=headers, head_only=head_only)

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        auth = self.headers.get("Authorization")
        hub = self.hub
        head_only = method == "HEAD"
        with hub.lock:
            hub.requests.append(f"{method} {parts.path}")
        try:
            body = self._body() if method in ("POST", "PUT") else b""
            if hub.outage:
                raise HubError(503, None, "Service Unavailable")
            with hub.lock:
                if segments[:2] == ["api", "models"] and len(segments) >= 4:
                    repo_id, rest = "/".join(segments[2:4]), segments[4:]
                    if method == "GET" and not rest:
                        return self._model_info(repo_id, None, auth, "blobs" in query)
                    if method == "GET" and rest[0] == "revision" and len(rest) == 2:
                        return self._model_info(repo_id, rest[1], auth, "blobs" in query)
                    if method == "GET" and rest[0] == "tree" and len(rest) >= 2:
                        return self._tree(repo_id, rest[1], "/".join(rest[2:]), auth,
                                          query.get("recursive", "").lower() in ("1", "true"))
                    if method == "POST" and rest[0] == "preupload" and len(rest) == 2:
                        return self._preupload(repo_id, rest[1], auth, body)
                    if method == "POST" and rest[0] == "commit" and len(rest) == 2:
                        return self._commit(repo_id, rest[1], auth, body)
                elif segments == ["api", "repos", "create"] and method == "POST":
                    return self._create(auth, body)
                elif segments == ["api", "validate-yaml"] and method == "POST":
                    return self._validate_yaml(body)
                elif len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
                    return self._resolve("/".join(segments[:2]), segments[3], "/".join(segments[4:]), auth,
                                         head_only)
            self._json(404, {"error": f"not implemented by the test hub: {method} {parts.path}"}, head_only)
        except HubError as err:
            self._error(err, head_only)

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    # ------------------------------------------------------------------ download side
    def _model_info(self, repo_id: str, revision: str | None, auth: str | None, blobs: bool) -> None:
        repo = self.hub.readable_repo(repo_id, auth)
        commit = repo.resolve(revision or "main")
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        card = _card_data(commit.files) or {}
        siblings = [dict(rfilename=p, **({"size": len(c), "blobId": git_blob_oid(c)} if blobs else {}))
                    for p, c in sorted(commit.files.items())]
        info = {"_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
                "author": repo_id.split("/")[0], "sha": commit.sha, "lastModified": commit.date,
                "createdAt": repo.created_at, "private": repo.private, "gated": "auto" if repo.gated else False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": list(card.get("tags") or []),
                "siblings": siblings}
        if card:
            info["cardData"] = card
            for key in ("library_name", "pipeline_tag"):
                if key in card:
                    info[key] = card[key]
        self._json(200, info)

    def _tree(self, repo_id: str, revision: str, path: str, auth: str | None, recursive: bool) -> None:
        repo = self.hub.readable_repo(repo_id, auth)
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries, folders = [], set()
        for name, content in sorted(commit.files.items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(prefix + "/".join(parts[:i + 1]) for i in range(len(parts)))
            entries.append({"type": "file", "oid": git_blob_oid(content), "size": len(content), "path": name})
        if prefix and not entries and not folders:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}", commit.sha)
        entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
                    for f in sorted(folders)]
        self._json(200, entries)

    def _resolve(self, repo_id: str, revision: str, path: str, auth: str | None, head_only: bool) -> None:
        repo = self.hub.readable_repo(repo_id, auth)
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if repo.gated:
            user, _ = self.hub.user_for(auth)
            if user is None:
                raise HubError(401, "GatedRepo", "Access to this gated repo requires a token")
            if user != repo_id.split("/")[0] and user not in repo.approved:
                raise HubError(403, "GatedRepo", "Access to this gated repo is restricted: accept its conditions")
        content = commit.files.get(path)
        if content is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}", commit.sha)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{git_blob_oid(content)}"', "Accept-Ranges": "bytes"}
        status, body = 200, content
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(content) - 1
            status, body = 206, content[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(content)}"
        self._send(status, body, "application/octet-stream", headers, head_only)

    # ------------------------------------------------------------------ upload side
    def _create(self, auth: str | None, body: bytes) -> None:
        payload = json.loads(body or b"{}")
        if payload.get("type", "model") != "model":
            raise HubError(400, None, "the test hub only hosts model repos")
        namespace, name = payload.get("organization"), payload.get("name", "")
        if namespace is None:
            namespace = self.hub.user_for(auth)[0] or ""
        repo_id = f"{namespace}/{name}"
        self.hub._writer(namespace, auth)
        url = f"{self.hub.url}/{repo_id}"
        if repo_id in self.hub.repos:
            return self._json(409, {"error": "You already created this model repo", "url": url})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.hub.create_repo(repo_id, private=private)
        self._json(200, {"url": url, "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()[:24]})

    def _preupload(self, repo_id: str, revision: str, auth: str | None, body: bytes) -> None:
        repo = self.hub.writable_repo(repo_id, auth)
        commit = repo.resolve(revision)
        existing = commit.files if commit else {}
        files = json.loads(body).get("files", [])
        # "regular" for everything keeps the client on the inline base64 commit path: no LFS, no Xet.
        self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                    "oid": git_blob_oid(existing[f["path"]]) if f["path"] in existing else None}
                                   for f in files],
                         "commitOid": commit.sha if commit else None})

    def _commit(self, repo_id: str, revision: str, auth: str | None, body: bytes) -> None:
        repo = self.hub.writable_repo(repo_id, auth)
        if revision not in repo.branches:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to a branch)")
        header, add, delete, folders = {}, {}, [], []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, None, f"unsupported encoding {value.get('encoding')!r}")
                add[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                delete.append(value["path"])
            elif key == "deletedFolder":
                folders.append(value["path"])
            else:
                raise HubError(400, None, f"the test hub does not implement {key!r} commit operations (LFS)")
        parent = header.get("parentCommit")
        if parent and not repo.branches[revision].startswith(parent):
            raise HubError(412, None, "A commit has happened since. Please refresh and try again.")
        commit = self.hub._commit(repo, revision, add, tuple(delete), header.get("summary", ""), tuple(folders))
        self._json(200, {"success": True, "commitOid": commit.sha, "commitMessage": commit.message,
                         "commitUrl": f"{self.hub.url}/{repo_id}/commit/{commit.sha}", "pullRequestUrl": None,
                         "hookOutput": ""})

    def _validate_yaml(self, body: bytes) -> None:
        content = json.loads(body).get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.S)
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})
