"""Finding manifests and data files.

Manifest lookup: a path to a ``.yaml`` / a folder with ``images/`` + ``masks/``, or a name looked
up in ``$MATSEG_MANIFESTS`` (``os.pathsep``-separated folders) then the repo's ``data_manifests/``.

File lookup for ``<path>`` (relative to the upstream root) of a manifest with ``mirror_subdir`` S:
  1. cache   ``$MATSEG_CACHE`` (default ``~/.cache/matseg-nb``) ``/S/<path>``
  2. mirrors ``$MATSEG_DATA_MIRROR`` (``os.pathsep``-separated) then ``<repo>/../shared/data``: ``<mirror>/S/<path>``
  3. download ``source.raw_url`` with pooch into the cache, verified by sha256
     (skipped when ``$MATSEG_OFFLINE=1`` or the file's sha256 is unknown).
sha256 of local files is verified too; results are remembered by (path, size, mtime) in
``<cache>/sha256-verified.json`` so they are not recomputed on every open.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

import yaml
from pydantic import ValidationError

from matseg_nb.data.schema import REPO_MANIFESTS, FileRef, Manifest
from matseg_nb.errors import UserError
from matseg_nb.jsonio import read_json

MANIFEST_SUFFIXES = (".yaml", ".yml")


def manifest_dirs() -> list[Path]:
    """Folders searched for manifests by name, in order."""
    env = os.environ.get("MATSEG_MANIFESTS", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p] + [REPO_MANIFESTS]


def list_manifests() -> list[str]:
    """Names of all manifests found (first folder wins on duplicates), sorted."""
    names: set[str] = set()
    for folder in manifest_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.iterdir() if p.suffix in MANIFEST_SUFFIXES)
    return sorted(names)


def is_plain_folder(path: Path) -> bool:
    return path.is_dir() and (path / "images").is_dir() and (path / "masks").is_dir()


def manifest_path(ref: str | os.PathLike, base_dir: Path | None = None) -> Path:
    """Resolve a dataset reference to a manifest file, or to a plain folder (``images/`` + ``masks/``).

    ``ref`` is a manifest name, a path to a ``.yaml`` manifest, or a folder; relative paths are
    taken relative to ``base_dir`` when that exists there, else to the working directory. Raises :class:`UserError`
    naming ``ref`` when nothing matches.
    """
    text = str(ref)
    if not text.strip():
        raise UserError("dataset: expected a manifest name, .yaml path or folder, found an empty string")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute() and base_dir is not None and (Path(base_dir) / candidate).exists():
        candidate = Path(base_dir) / candidate  # relative to base_dir first, then to the working directory
    looks_like_path = os.sep in text or "/" in text or candidate.suffix in MANIFEST_SUFFIXES
    if candidate.is_file() and candidate.suffix in MANIFEST_SUFFIXES:
        return candidate.resolve()
    if candidate.is_dir():
        if is_plain_folder(candidate):
            return candidate.resolve()
        raise UserError(f"{text}: expected a folder with images/ and masks/ subfolders, found neither")
    if not looks_like_path:
        for folder in manifest_dirs():
            for suffix in MANIFEST_SUFFIXES:
                hit = folder / f"{text}{suffix}"
                if hit.is_file():
                    return hit.resolve()
    known = ", ".join(list_manifests()) or "none"
    raise UserError(
        f"{text}: expected a manifest name ({known}), a manifest .yaml or a folder with images/ + masks/, "
        "found nothing"
    )


def _pydantic_lines(path: Path, err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        found = e.get("input")
        found_txt = f", found {found!r}"[:120] if not isinstance(found, dict | list) else ""
        lines.append(f"{path}: {loc}: {e['msg']}{found_txt}")
    return lines


def load_manifest(ref: str | os.PathLike, base_dir: Path | None = None) -> Manifest:
    """Load and validate a manifest (by name or path). Raises :class:`UserError` with field paths."""
    path = manifest_path(ref, base_dir)
    if path.is_dir():
        raise UserError(f"{ref}: expected a manifest, found a plain data folder (use open_dataset)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UserError(f"{path}: expected valid YAML, found {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a YAML mapping, found {type(data).__name__}")
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        raise UserError(*_pydantic_lines(path, err)) from None


def cache_dir() -> Path:
    return Path(os.environ.get("MATSEG_CACHE") or Path.home() / ".cache" / "matseg-nb").expanduser()


def mirror_dirs() -> list[Path]:
    """Mirror folders in lookup order (only those that exist)."""
    env = os.environ.get("MATSEG_DATA_MIRROR", "")
    dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[3] / "shared" / "data")  # a checkout's sibling mirror, if any
    return [d for d in dirs if d.is_dir()]


def search_roots(manifest: Manifest) -> list[Path]:
    """Folders that may hold the manifest's upstream root: cache first, then mirrors."""
    sub = manifest.source.mirror_subdir
    return [cache_dir() / sub] + [m / sub for m in mirror_dirs()]


def offline() -> bool:
    return os.environ.get("MATSEG_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


# ---------------------------------------------------------------- checksums
_MEMO: dict[str, dict[str, list]] = {}  # verified-file path -> {abs path: [size, mtime_ns, sha256]}


def _verified_file() -> Path:
    return cache_dir() / "sha256-verified.json"


def _load_verified() -> dict[str, list]:
    key = str(_verified_file())
    if key not in _MEMO:
        data = read_json(key)
        _MEMO[key] = data if isinstance(data, dict) else {}
    return _MEMO[key]


def _save_verified() -> None:
    from matseg_nb.atomic import atomic_write_json

    try:
        atomic_write_json(_verified_file(), _load_verified())
    except OSError:  # read-only home: verification just is not remembered
        pass


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path: Path) -> tuple[str, bool]:
    """sha256 of ``path``, reused while (size, mtime) are unchanged; returns (hex, computed_now)."""
    st = path.stat()
    key = str(path.resolve())
    memo = _load_verified()
    hit = memo.get(key)
    if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        return hit[2], False
    digest = sha256_of(path)
    memo[key] = [st.st_size, st.st_mtime_ns, digest]
    return digest, True


# ---------------------------------------------------------------- files
def _download(manifest: Manifest, ref: FileRef) -> Path:
    import pooch

    src = manifest.source
    url = src.raw_url.format(commit=src.commit or "", root=src.root, path=quote(ref.path))
    target = cache_dir() / src.mirror_subdir / ref.path
    fetched = pooch.retrieve(
        url=url,
        known_hash=f"sha256:{ref.sha256}",
        fname=target.name,
        path=target.parent,
        progressbar=False,
        downloader=pooch.HTTPDownloader(timeout=60, progressbar=False),
    )
    return Path(fetched)


#: first download error of the last :func:`resolve_files` call (shown in the "missing files" error)
DOWNLOAD_ERROR: dict[str, str] = {}


def resolve_files(manifest: Manifest, refs: list[FileRef]) -> tuple[dict[str, Path], list[FileRef]]:
    """Find every file: returns ({relative path: local path}, [refs not found anywhere]).

    Raises one :class:`UserError` listing every sha256 mismatch.
    """
    roots = search_roots(manifest)
    found: dict[str, Path] = {}
    absent: list[FileRef] = []
    bad: list[str] = []
    computed = False
    network_down = False
    DOWNLOAD_ERROR.clear()
    for ref in refs:
        local = next((r / ref.path for r in roots if (r / ref.path).is_file()), None)
        if local is None and ref.sha256 and manifest.source.raw_url and not offline() and not network_down:
            try:
                local = _download(manifest, ref)
            except Exception as err:  # network down, 404, hash mismatch of the download
                import requests

                network_down = isinstance(err, requests.ConnectionError | requests.Timeout)
                DOWNLOAD_ERROR.setdefault("error", f"{ref.path}: {type(err).__name__}: {str(err)[:160]}")
                local = None
        if local is None:
            absent.append(ref)
            continue
        if ref.sha256:
            digest, now = cached_sha256(local)
            computed |= now
            if digest != ref.sha256:
                bad.append(f"{local}: sha256 mismatch, expected {ref.sha256}, found {digest}")
                continue
        found[ref.path] = local
    if computed:
        _save_verified()
    if bad:
        raise UserError(*bad)
    return found, absent


def where_to_put(manifest: Manifest) -> str:
    """One sentence saying where a user should place the files."""
    sub = manifest.source.mirror_subdir
    mirrors = os.environ.get("MATSEG_DATA_MIRROR")
    base = f"{mirrors.split(os.pathsep)[0]}/{sub}" if mirrors else f"$MATSEG_DATA_MIRROR/{sub}"
    return f"put them under {base}/ or {cache_dir() / sub}/"
