"""Files a reader never sees half-written: everything is written beside its target, then renamed into place.

`atomic_write` for one file, `atomic_folder` for a folder whose files must change together (a checkpoint,
a resume state), `zip_folder` for a download. A crash leaves either the old version or the new one
(`recover_folder` puts the old one back after a crash in the middle of a folder swap).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to a hidden sibling, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `folder`; when the block ends without error it replaces `folder`.

    On an error the temporary folder is removed and `folder` is left as it was.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint is shared like any folder
        for path in tmp.iterdir():
            os.chmod(path, 0o644)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_folder(folder: str | Path) -> Path:
    """`folder` as the last complete version: after a crash inside atomic_folder's swap (the old version set
    aside, the new one not yet renamed into place) the old version is put back."""
    folder = Path(folder)
    old = folder.with_name(f".{folder.name}.old")
    if not folder.exists() and old.is_dir():
        old.rename(folder)
    return folder


def zip_folder(folder: str | Path) -> Path:
    """folder.zip next to the folder (the folder itself at the top of the archive), written atomically."""
    folder = Path(folder)
    partial = shutil.make_archive(str(folder.parent / f".{folder.name}.partial"), "zip",
                                  root_dir=folder.parent, base_dir=folder.name)
    final = folder.parent / f"{folder.name}.zip"
    os.replace(partial, final)
    return final
