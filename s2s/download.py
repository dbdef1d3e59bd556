"""Downloads that survive a bad network: timeouts, a progress bar, resume from a `.part` file, a SHA-256 check.

`fetch(url, path, sha256)` writes `path` only once every byte has arrived and matched the recorded hash;
until then the bytes live in `path.part`, and the next attempt (in this run, or the next time the command
is run) asks the server for the rest with an HTTP Range request. A server that cannot be reached fails at
once with a message that says so; a connection that breaks in the middle of a file is resumed a few times.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from tqdm import tqdm

CONNECT_TIMEOUT_S = 10.0  # no answer to the TCP/TLS handshake in this time: the server is unreachable
READ_TIMEOUT_S = 30.0  # no byte for this long in the middle of a file: the connection is dead, resume it
RETRIES = 3  # a broken connection is resumed this many times before giving up (the .part file stays)
USER_AGENT = "s2s-data/0.1 (python-httpx; s2s data get)"


class DownloadError(OSError):
    """A file that could not be downloaded; the message says why and what to do."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the recorded ones."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, path: str | Path, sha256: str | None = None, *, progress: bool = True,
          timeout: httpx.Timeout | float | None = None, retries: int = RETRIES, backoff_s: float = 1.0) -> str:
    """Download `url` to `path`, resuming `path.part` if a previous attempt left one; return the SHA-256.

    With `sha256`, bytes that do not match raise ChecksumError and the partial file is removed (resuming
    bad bytes would never help). Without it the caller decides what the hash means.
    """
    path = Path(path)
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(timeout, httpx.Timeout):  # one number: the limit for connecting and for each read
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S) if timeout is None else httpx.Timeout(timeout)
    host = urlsplit(url).netloc or url
    bar = tqdm(desc=path.name, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
               file=sys.stderr, dynamic_ncols=True, delay=0.5)  # shown once a transfer takes time
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True,
                          headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}) as client:
            for attempt in range(retries + 1):
                try:
                    _transfer(client, url, part, bar)
                    break
                except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                    raise DownloadError(f"cannot reach {host} ({_reason(err)}): no network? Copy the files by hand "
                                        f"or point --mirror at a server that has them") from None
                except httpx.HTTPStatusError as err:
                    raise DownloadError(f"{url}: the server answered HTTP {err.response.status_code}") from None
                except (httpx.TransportError, httpx.StreamError) as err:  # the connection broke mid-file
                    have = part.stat().st_size if part.exists() else 0
                    if attempt == retries:
                        raise DownloadError(
                            f"{url}: the connection broke {retries + 1} times ({_reason(err)}); {have:,} bytes are "
                            f"kept in {part}: run the same command again to resume") from None
                    bar.write(f"{path.name}: connection broken after {have:,} bytes ({_reason(err)}); resuming")
                    time.sleep(backoff_s * 2 ** attempt)
    finally:
        bar.close()
    digest = sha256_file(part)
    if sha256 and digest != sha256.lower():
        part.unlink()
        raise ChecksumError(f"{path.name} from {url} has SHA-256 {digest}, not the recorded {sha256}: the file was "
                            "removed (the server may now publish a different version)")
    os.replace(part, path)
    return digest


def _transfer(client: httpx.Client, url: str, part: Path, bar: tqdm) -> None:
    """Append the missing bytes of `url` to `part` (all of them if the server ignores the Range request)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and have:  # nothing after `have`: the .part is whole (the hash decides)
            return
        response.raise_for_status()
        if response.status_code != 206:
            have = 0  # a full answer: start the file again
        length = response.headers.get("Content-Length")
        bar.reset(total=have + int(length) if length and length.isdigit() else None)
        bar.update(have)
        with open(part, "ab" if have else "wb") as f:
            for chunk in response.iter_raw():  # as they arrive (a sized chunk would lose a partial one); as stored
                f.write(chunk)
                bar.update(len(chunk))


def _reason(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:200]
