"""Named corpora: where they come from, what their bytes hash to, where this machine has them.

    s2s data get multi30k            # -> $S2S_DATA/multi30k/          (default ~/.cache/s2s/data)
    s2s data get tatoeba-eng-deu     # -> $S2S_DATA/tatoeba/eng-deu.tsv.gz
    s2s data list                    # every corpus, and where it was found

A *data root* holds each corpus at the same relative path (`multi30k/`, `tatoeba/eng-deu.tsv.gz`), the
layout of ../shared/data. A recipe that names a corpus finds it in the first root that has it, in this
order: `--data DIR`, `$S2S_DATA`, the user cache folder, `../shared/data`.

Checksums. The SHA-256 of every Multi30k file below was computed from the copy in ../shared/data (its gzip
headers carry the December 2017 dates of the multi30k/dataset repository's files); it has NOT been checked
against github.com, which this project's build machines cannot reach. manythings.org republishes its
Tatoeba archives as Tatoeba grows, so no fixed hash exists for them: `s2s data get` records the hash of what it
downloaded (`<name>.source.json`) and says whether the extracted text is the snapshot the bundled models
were trained on (`snapshot_sha256`, the hash of the uncompressed TSV in ../shared/data).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .data import DataError
from .download import fetch, sha256_file

ENV_VAR = "S2S_DATA"
MAX_EXTRACTED_BYTES = 4 * 1024**3  # one text file out of an archive; anything bigger is refused
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
MANYTHINGS_URL = "https://www.manythings.org/anki"
# The folders searched last: ../shared/data beside this checkout, and ../shared/data from the working folder.
SHARED_ROOTS = [Path(__file__).resolve().parent.parent.parent / "shared" / "data", Path("../shared/data")]


@dataclass(frozen=True)
class Remote:
    """One file to download. An archive names the members it yields (member -> file name; `.gz` names are
    gzipped on the way out)."""

    url: str
    sha256: str | None  # of the downloaded bytes; None where upstream republishes the file
    extract: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def outputs(self) -> list[str]:
        return list(self.extract.values()) or [self.filename]


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str  # relative to a data root: the folder or file a recipe reads
    remotes: tuple[Remote, ...]
    license: str
    attribution: str
    about: str = ""
    snapshot_sha256: dict = field(default_factory=dict)  # output file -> SHA-256 of its uncompressed text

    @property
    def folder(self) -> str:
        """Where the files go, relative to a data root."""
        return self.path if not self.path.endswith((".gz", ".tsv")) else self.path.rsplit("/", 1)[0]

    def outputs(self) -> list[str]:
        return [name for remote in self.remotes for name in remote.outputs()]


_MULTI30K_SHA256 = {  # computed from ../shared/data/multi30k (2026-11-30); unverified against github.com
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2017_mscoco.fr.gz": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
}

TATOEBA_LICENSE = "CC-BY 2.0 (France)"
TATOEBA_ATTRIBUTION = ("Sentence pairs from the Tatoeba Project (tatoeba.org), as packaged by manythings.org/anki. "
                       "Attribution: www.manythings.org/anki and tatoeba.org; keep this attribution (and the "
                       "archive's _about.txt, saved as ABOUT-eng-<lang>.txt) with any model trained on them.")


def _tatoeba(lang3: str, lang2: str, snapshot: str, pairs: int, date: str) -> Dataset:
    return Dataset(
        name=f"tatoeba-eng-{lang3}", path=f"tatoeba/eng-{lang3}.tsv.gz",
        remotes=(Remote(f"{MANYTHINGS_URL}/{lang3}-eng.zip", None,
                        {f"{lang3}.txt": f"eng-{lang3}.tsv.gz", "_about.txt": f"ABOUT-eng-{lang3}.txt"}),),
        license=TATOEBA_LICENSE, attribution=TATOEBA_ATTRIBUTION,
        about=(f"English<TAB>{lang2} pairs. The bundled models were trained on the {date} snapshot ({pairs:,} "
               "pairs); manythings.org serves the current one, so a recipe's split differs unless the snapshot "
               "matches (s2s data get says which you have)."),
        snapshot_sha256={f"eng-{lang3}.tsv.gz": snapshot})


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="multi30k", path="multi30k",
        remotes=tuple(Remote(f"{MULTI30K_URL}/{name}", sha) for name, sha in _MULTI30K_SHA256.items()),
        license="not stated in the downloaded files; see github.com/multi30k/dataset before redistributing",
        attribution=("Multi30k task 1 (github.com/multi30k/dataset). Cite: Elliott, Frank, Sima'an, Specia (2016) "
                     "Multi30K: Multilingual English-German Image Descriptions; Elliott, Frank, Barrault, Bougares, "
                     "Specia (2017) Findings of the Second Shared Task on Multimodal Machine Translation and "
                     "Multilingual Image Description (French, test_2017)."),
        about="Image captions: train 29,000, val 1,014, test_2016_flickr 1,000, test_2017_flickr 1,000, "
              "test_2017_mscoco 461; en, de, fr (cs: train, val, test_2016_flickr)."),
    _tatoeba("deu", "German", "a79c90b3cd3102decffa49cc00fb6f20023974f2ae5c4782515bebe133fcc07b", 169_813,
             "2018-05-13"),
    _tatoeba("fra", "French", "2546838ae46e0eac4c02ab7032ea0a02a006074a5340077a36a9444f41e02888", 142_787,
             "2017-09-29"),
)}


class DataNotFound(DataError):
    """A named corpus that is in none of the data roots; the message is one line that says how to get it."""


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown corpus {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def cache_root() -> Path:
    """Where `s2s data get` writes without --dir: $S2S_DATA, else the user cache folder."""
    return Path(os.environ[ENV_VAR]).expanduser() if os.environ.get(ENV_VAR) else user_cache()


def user_cache() -> Path:
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("s2s", appauthor=False)) / "data"


def roots(data_root: str | Path | None = None) -> list[tuple[str, Path]]:
    """(label, folder) in search order: --data, $S2S_DATA, the user cache, ../shared/data."""
    found = [("--data", Path(data_root).expanduser())] if data_root else []
    if os.environ.get(ENV_VAR):
        found.append(("$" + ENV_VAR, Path(os.environ[ENV_VAR]).expanduser()))
    found.append(("cache", user_cache()))
    found += [("shared", root) for root in SHARED_ROOTS]
    unique, seen = [], set()
    for label, root in found:
        key = os.path.abspath(root)
        if key not in seen:
            seen.add(key)
            unique.append((label, root))
    return unique


def is_present(ds: Dataset, root: Path) -> bool:
    return all((root / ds.folder / name).is_file() for name in ds.outputs() if not name.startswith("ABOUT"))


def locate(name: str, data_root: str | Path | None = None) -> Path:
    """The path a recipe reads for corpus `name`, from the first data root that has all of it."""
    ds = dataset(name)
    searched = roots(data_root)
    for _, root in searched:
        if is_present(ds, root):
            return root / ds.path
    where = ", ".join(str(root) for _, root in searched)
    raise DataNotFound(f"corpus {name!r} not found (looked in {where}); get it with: s2s data get {name}")


def named_by_path(path: str | Path) -> str | None:
    """The corpus a path into a data root points at (`../shared/data/multi30k` -> `multi30k`), if any."""
    parts = Path(path).parts
    for ds in DATASETS.values():
        tail = Path(ds.path).parts
        if parts[-len(tail):] == tail:
            return ds.name
    return None


# ---------------------------------------------------------------------- s2s data get
def get(name: str, root: str | Path | None = None, mirror: str | None = None, progress: bool = True,
        log=print) -> Path:
    """Download (or finish downloading) corpus `name` into `root` and check it; return the path recipes read.

    Files already there with the recorded hash are kept; a half-downloaded file resumes. `mirror` replaces
    each file's server: files are fetched from MIRROR/<folder>/<file name>.
    """
    ds = dataset(name)
    root = Path(root).expanduser() if root else cache_root()
    folder = root / ds.folder
    folder.mkdir(parents=True, exist_ok=True)
    record = _read_record(folder, ds)
    for remote in ds.remotes:
        url = f"{mirror.rstrip('/')}/{ds.folder}/{remote.filename}" if mirror else remote.url
        if remote.extract:
            _get_archive(ds, remote, url, folder, record, progress, log)
        else:
            _get_file(remote, url, folder, record, progress, log)
    record.update(license=ds.license, attribution=ds.attribution)
    (folder / f"{ds.name}.source.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"{ds.name}: {root / ds.path}")
    log(f"License: {ds.license}")
    log(f"Attribution: {ds.attribution}")
    if ds.about:
        log(ds.about)
    return root / ds.path


def _get_file(remote: Remote, url: str, folder: Path, record: dict, progress: bool, log) -> None:
    target = folder / remote.filename
    if target.is_file() and remote.sha256 and sha256_file(target) == remote.sha256:
        return  # already here and intact
    digest = fetch(url, target, remote.sha256, progress=progress)
    record.setdefault("files", {})[remote.filename] = dict(url=url, sha256=digest, checked=bool(remote.sha256))


def _get_archive(ds: Dataset, remote: Remote, url: str, folder: Path, record: dict, progress: bool, log) -> None:
    if all((folder / name).is_file() for name in remote.outputs()):
        return  # extracted before (the archive has no fixed hash to compare again)
    archive = folder / ".downloads" / remote.filename
    digest = fetch(url, archive, remote.sha256, progress=progress)
    if not remote.sha256:
        log(f"{remote.filename}: no recorded SHA-256 (the publisher updates it); downloaded {digest}")
    record.setdefault("files", {})[remote.filename] = dict(
        url=url, sha256=digest, checked=bool(remote.sha256),
        downloaded=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member, out_name in remote.extract.items():
                text_sha = _extract(zf, member, folder / out_name)
                snapshot = ds.snapshot_sha256.get(out_name)
                if snapshot:
                    same = text_sha == snapshot
                    record.setdefault("snapshot", {})[out_name] = dict(text_sha256=text_sha, bundled_snapshot=same)
                    log(f"{out_name}: " + ("the snapshot the bundled models were trained on" if same else
                                           "a newer snapshot than the bundled models were trained on; "
                                           "a recipe's split will differ"))
    except zipfile.BadZipFile:
        archive.unlink(missing_ok=True)
        raise DataError(f"{url} is not a zip archive; it was removed, run the command again") from None
    archive.unlink()
    if not any(archive.parent.iterdir()):
        archive.parent.rmdir()


def _extract(zf: zipfile.ZipFile, member: str, target: Path) -> str:
    """One member of an archive to `target` (gzipped, reproducibly, when target ends in .gz), written
    beside and renamed into place; returns the SHA-256 of the uncompressed text."""
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise DataError(f"the archive has no {member} (it has: {', '.join(zf.namelist()[:10])})") from None
    if info.file_size > MAX_EXTRACTED_BYTES:
        raise DataError(f"{member} would be {info.file_size / 1e9:.1f} GB uncompressed; refusing")
    tmp = target.with_name(f".{target.name}.tmp")
    digest = hashlib.sha256()
    try:
        with zf.open(member) as src, open(tmp, "wb") as raw:
            out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") if target.suffix == ".gz" else raw
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
            if out is not raw:
                out.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _read_record(folder: Path, ds: Dataset) -> dict:
    path = folder / f"{ds.name}.source.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"dataset": ds.name}


def describe(data_root: str | Path | None = None) -> list[str]:
    """One line per corpus: its name and where it was found (or how to get it)."""
    lines = []
    for ds in DATASETS.values():
        where = next((f"{label}: {root / ds.path}" for label, root in roots(data_root) if is_present(ds, root)),
                     f"not here; s2s data get {ds.name}")
        lines.append(f"{ds.name:18s} {where}")
    return lines
