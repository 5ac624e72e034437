"""Encoder weights: ImageNet from the local Hugging Face cache only, a local state-dict file, or none.

Only :func:`fetch_imagenet` (``matseg weights fetch``, an explicit user request) downloads. Everything
else never touches the network: every Hub lookup uses ``local_files_only=True`` and the cache folder
read from the environment at call time (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's
default ``~/.cache/huggingface/hub``). A missing file raises ``UserError`` at once, never a silent fallback
to random weights.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from matseg_nb.errors import UserError
from matseg_nb.weights_cache import hub_cache_dir

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")
PREFIXES = ("", "encoder.", "model.encoder.", "module.encoder.", "module.", "model.", "backbone.")


def _how_to(repo_id: str, revision: str | None, encoder: str) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"encoder_weights: expected ImageNet weights for encoder {encoder!r} (Hugging Face repo {repo_id}) in the "
        f"local cache {hub_cache_dir()}, found none (training never downloads). Provide them by (1) "
        f"`matseg weights fetch {encoder}` (once, needs internet; or on a machine with internet "
        f"`huggingface-cli download {repo_id}{rev}`, then copy its ~/.cache/huggingface folder here and point "
        f"HF_HOME at it); or (2) set encoder_weights to a local state-dict file "
        f"(.pth/.pt/.safetensors); or (3) set encoder_weights to \"none\" to train from scratch"
    )


def _cached(repo_id: str, filename: str, revision: str | None) -> str | None:
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(
            repo_id, filename=filename, revision=revision, cache_dir=hub_cache_dir(), local_files_only=True
        )
    except Exception:  # LocalEntryNotFoundError, OfflineModeIsEnabled, EntryNotFoundError, ...
        return None


def imagenet_source(encoder: str) -> dict:
    """Locate cached ImageNet weights for ``encoder``; raise UserError (fast) when absent.

    Returns a report: mode, repo_id, revision, path.
    """
    if encoder.startswith("tu-"):
        import timm

        cfg = timm.models.get_pretrained_cfg(encoder[3:])
        repo_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not repo_id:
            raise UserError(f"encoder_weights: expected a timm model with Hub weights for 'imagenet', found {encoder!r}")
        path = _cached(repo_id, "model.safetensors", None) or _cached(repo_id, "pytorch_model.bin", None)
        revision = None
    else:
        import segmentation_models_pytorch as smp

        settings = smp.encoders.encoders[encoder]["pretrained_settings"].get("imagenet")
        if settings is None:
            available = list(smp.encoders.encoders[encoder]["pretrained_settings"])
            raise UserError(f"encoder_weights: expected one of {available} or a file or 'none' for {encoder!r}, found 'imagenet'")
        repo_id, revision = settings["repo_id"], settings.get("revision")
        path = _cached(repo_id, "model.safetensors", revision)
        if path and not _cached(repo_id, "config.json", revision):
            path = None
    if not path:
        raise UserError(_how_to(repo_id, revision, encoder))
    return {"mode": "imagenet", "pretrained": True, "source": "huggingface-cache", "repo_id": repo_id,
            "revision": revision, "path": path}


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Patch smp's and timm's ``hf_hub_download`` to cache-only lookups in ``hub_cache_dir()``."""
    from huggingface_hub import hf_hub_download

    patched = functools.partial(hf_hub_download, local_files_only=True, cache_dir=hub_cache_dir())
    targets = []
    import segmentation_models_pytorch.base.hub_mixin as smp_hub
    import segmentation_models_pytorch.encoders as smp_enc

    targets += [smp_enc, smp_hub]
    try:
        import timm.models._hub as timm_hub

        targets.append(timm_hub)
    except ImportError:  # pragma: no cover
        pass
    saved = [(t, t.hf_hub_download) for t in targets if hasattr(t, "hf_hub_download")]
    try:
        for t, _ in saved:
            t.hf_hub_download = patched
        yield
    finally:
        for t, orig in saved:
            t.hf_hub_download = orig


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors / .pth / .pt / .bin file (unwrapping 'state_dict'/'model' containers)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"encoder_weights: expected 'imagenet', 'none' or an existing weights file, found {str(path)!r}")
    if p.suffix not in WEIGHT_SUFFIXES:
        raise UserError(f"{p}: expected a weights file ending in {', '.join(WEIGHT_SUFFIXES)}, found {p.suffix!r}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p), device="cpu")
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{p}: expected a readable state dict, found {type(exc).__name__}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{p}: expected a mapping of parameter names to tensors, found {type(sd).__name__}")
    return sd


def _adapt(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """src reshaped to dst when equal, or a conv kernel whose input channels differ (RGB -> C, smp's rule)."""
    if src.shape == dst.shape:
        return src
    if src.ndim == 4 and dst.ndim == 4 and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]:
        if dst.shape[1] == 1:
            return src.sum(dim=1, keepdim=True)
        reps = -(-dst.shape[1] // src.shape[1])
        return src.repeat(1, reps, 1, 1)[:, : dst.shape[1]] * (src.shape[1] / dst.shape[1])
    return None


def load_encoder_file(encoder: nn.Module, path: str | os.PathLike, min_match: float = 0.95) -> dict:
    """Load a local state dict into ``encoder``; refuse (UserError) when under ``min_match`` of its keys match.

    Keys are matched after stripping the best of a few common prefixes ('encoder.', 'module.', ...);
    ``num_batches_tracked`` buffers are not counted. Returns a report with matched/total/fraction.
    """
    src = read_state_dict(path)
    target = {k: v for k, v in encoder.state_dict().items() if not k.endswith("num_batches_tracked")}
    best: tuple[int, str, dict[str, torch.Tensor]] = (-1, "", {})
    for prefix in PREFIXES:
        cand = {k[len(prefix):]: v for k, v in src.items() if k.startswith(prefix)}
        loaded = {k: a for k, t in target.items() if k in cand and (a := _adapt(cand[k], t)) is not None}
        if len(loaded) > best[0]:
            best = (len(loaded), prefix, loaded)
    n, prefix, loaded = best
    total = len(target)
    frac = n / total if total else 0.0
    report = {
        "mode": "file", "pretrained": True, "source": "local-file", "path": str(Path(path).resolve()),
        "matched_keys": n, "encoder_keys": total, "match_fraction": round(frac, 4), "key_prefix": prefix,
        "min_encoder_key_match": min_match,
        "unmatched_examples": sorted(set(target) - set(loaded))[:5],
    }
    if frac < min_match:
        raise UserError(
            f"{path}: expected at least {min_match:.0%} of the encoder's {total} keys to match, "
            f"found {n} ({frac:.1%}); wrong encoder or file? (lower min_encoder_key_match to accept)"
        )
    encoder.load_state_dict(loaded, strict=False)
    return report


# --- explicit download: ``matseg weights fetch`` ---------------------------------------------------


def weights_repo(encoder: str) -> tuple[str, str | None, list[str]]:
    """(Hub repo id, revision, files) holding the ImageNet weights of ``encoder`` (smp or ``tu-`` timm)."""
    if encoder.startswith("tu-"):
        import timm

        try:
            cfg = timm.models.get_pretrained_cfg(encoder[3:])
        except Exception:  # noqa: BLE001 - unknown timm name
            cfg = None
        repo_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not repo_id:
            raise UserError(f"encoder {encoder!r}: expected a timm model with Hub ImageNet weights, found none")
        return repo_id, None, ["model.safetensors"]
    import segmentation_models_pytorch as smp

    if encoder not in smp.encoders.encoders:
        raise UserError(f"encoder: expected an smp encoder name or tu-<timm name>, found {encoder!r}")
    settings = smp.encoders.encoders[encoder]["pretrained_settings"].get("imagenet")
    if settings is None:
        raise UserError(f"encoder {encoder!r}: expected ImageNet weights in smp, found only "
                        f"{sorted(smp.encoders.encoders[encoder]['pretrained_settings'])}")
    return settings["repo_id"], settings.get("revision"), ["config.json", "model.safetensors"]


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _forget(path: Path) -> None:
    """Remove a cached snapshot link and the blob it points to."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def fetch_imagenet(encoder: str, endpoint: str | None = None) -> dict:
    """Download ``encoder``'s ImageNet weights into :func:`hub_cache_dir` (progress bars from
    huggingface_hub), verify each file's SHA-256 against the Hub's (LFS ETag), and return a
    report {encoder, repo_id, revision, files: [{name, path, sha256, size}]}. A mismatching file
    is removed from the cache and refused with a :class:`UserError`."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    repo_id, revision, files = weights_repo(encoder)
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    report = {"encoder": encoder, "repo_id": repo_id, "revision": revision, "files": []}
    for name in files:
        try:
            meta = get_hf_file_metadata(hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint))
            path = Path(hf_hub_download(repo_id, name, revision=revision, cache_dir=hub_cache_dir(), endpoint=endpoint))
        except Exception as err:  # noqa: BLE001 - network, missing repo/file, HTTP errors
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"{repo_id}/{name}: expected a download from {endpoint or 'huggingface.co'}, "
                            f"found {type(err).__name__}: {msg}") from None
        expected = (meta.etag or "").strip('"').lower()
        actual = _sha256(path)
        if len(expected) == 64 and actual != expected:
            _forget(path)
            raise UserError(f"{repo_id}/{name}: expected SHA-256 {expected}, found {actual}; the download is corrupt "
                            "and was removed from the cache, run matseg weights fetch again")
        report["files"].append({"name": name, "path": str(path), "sha256": actual, "size": path.stat().st_size,
                                "verified": len(expected) == 64})
    imagenet_source(encoder)  # the training path finds it now (raises otherwise)
    return report


def list_cached() -> list[dict]:
    """Model repos in :func:`hub_cache_dir`: repo_id, size_bytes, revisions, files."""
    from huggingface_hub import scan_cache_dir

    root = hub_cache_dir()
    if not root.is_dir():
        return []
    rows = []
    for repo in sorted(scan_cache_dir(root).repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        files = sorted({f.file_name for rev in repo.revisions for f in rev.files})
        rows.append({"repo_id": repo.repo_id, "size_bytes": repo.size_on_disk,
                     "revisions": sorted(rev.commit_hash for rev in repo.revisions), "files": files})
    return rows
