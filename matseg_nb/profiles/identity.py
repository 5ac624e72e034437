"""Content identities of the inputs a job depends on: dataset references and encoder weight files.

A dataset reference (manifest name, manifest path, or folder with ``images/`` + ``masks/``) is resolved
with :func:`matseg_nb.data.manifest_path`. Its identity is content-based so that job ids do not depend on
where the repository is cloned: a manifest is identified by the sha256 of its file, a plain folder by the
sha256 of its sorted ``relative path<TAB>size`` listing, a weights file by the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from matseg_nb.errors import UserError
from matseg_nb.profiles.schema import WEIGHT_KEYWORDS


@dataclass(frozen=True)
class DatasetIdentity:
    """``ref``: manifest name or absolute path; ``slug``: short name for job ids; ``kind``: manifest|folder."""

    ref: str
    slug: str
    kind: str
    sha256: str


def slugify(text: str) -> str:
    """``"My Data (v2)"`` -> ``"my-data-v2"``; never empty."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "dataset"


def _is_local_path(ref: str, base_dir: Path | None) -> bool:
    candidate = Path(ref).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = Path(base_dir) / candidate
    return candidate.exists()


@lru_cache(maxsize=256)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within the process."""
    st = path.stat()
    return _file_sha256(path.resolve(), st.st_size, st.st_mtime_ns)


def folder_fingerprint(root: Path) -> str:
    """sha256 of the sorted ``<relative path>\\t<size in bytes>`` lines of every file under
    ``images/`` and ``masks/`` (hidden files ignored)."""
    lines = []
    for sub in ("images", "masks"):
        for path in sorted((root / sub).rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                lines.append(f"{rel.as_posix()}\t{path.stat().st_size}\n")
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def resolve_dataset(ref: str, base_dir: Path | None = None) -> tuple[str, Path]:
    """(reference to keep, resolved manifest file or folder). Names stay names; paths become absolute.

    Raises :class:`matseg_nb.errors.UserError` for unknown references.
    """
    from matseg_nb.data import manifest_path

    resolved = Path(manifest_path(ref, base_dir=base_dir))
    return (str(resolved) if _is_local_path(ref, base_dir) else ref), resolved


def ref_problems(ref: str, err: UserError, base_dir: Path | None = None) -> list[str]:
    """Lines of a failed resolution of ``ref``, reworded as ``expected ..., found '<ref>' ...``."""
    where = f" under {base_dir}" if base_dir is not None and not Path(ref).expanduser().is_absolute() else ""
    lines = []
    for line in err.problems:
        line = line.removeprefix(f"{ref}: ")
        if line.endswith(", found nothing"):
            line = line.removesuffix("nothing") + f"{ref!r} (no such manifest, file or folder{where})"
        lines.append(line)
    return lines


def dataset_identity(ref: str, base_dir: Path | None = None) -> DatasetIdentity:
    """Resolve ``ref`` and fingerprint its content."""
    kept, resolved = resolve_dataset(ref, base_dir)
    if resolved.is_dir():
        return DatasetIdentity(kept, slugify(resolved.name), "folder", folder_fingerprint(resolved))
    return DatasetIdentity(kept, slugify(resolved.stem), "manifest", file_sha256(resolved))


def resolve_weights(value: str, base_dir: Path | None = None) -> str:
    """``"imagenet"``/``"none"`` unchanged, a file path made absolute; ``ValueError`` if the file is absent."""
    if value in WEIGHT_KEYWORDS:
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise ValueError(
            f"expected 'imagenet', 'none' or an existing weights file, found {value!r} (no file at {path})"
        )
    return str(path.resolve())


def weights_fingerprint(value: str) -> str | None:
    """sha256 of a weights file; None for ``"imagenet"`` / ``"none"``."""
    return None if value in WEIGHT_KEYWORDS else file_sha256(Path(value))
