"""MicroNet encoder weights (Stuckner et al. 2022, npj Comput. Mater. 8:200), published by NASA in the public
S3 bucket of ``nasa/pretrained-microscopy-models``: URL per (encoder, weights) and the input normalization
they were trained with (:func:`input_standardization`); :func:`fetch_micronet` downloads one file into the weights cache, checksummed.

Only on explicit command; nothing here touches the network at import."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from matseg_nb.errors import UserError

#: public mirror of the MicroNet weights (overridable for tests / local mirrors with MATSEG_MICRONET_ENDPOINT)
MICRONET_ENDPOINT = "https://nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models"
#: profile value -> file-name part in the bucket
WEIGHT_KINDS = {"micronet": "microscopynet", "imagenet-micronet": "imagenet-microscopynet"}
#: mean / std (RGB, [0, 1] input) the MicroNet encoders were trained with
MICRONET_MEAN = (0.4723, 0.4599, 0.4468)
MICRONET_STD = (0.1684, 0.1575, 0.1675)
#: encoder-weights name -> (mean, std) per R, G, B channel of the [0, 1] inputs those weights were trained on
#: (both MicroNet kinds: ``pretrained_microscopy_models.util.get_special_preprocessing_fn``'s defaults)
INPUT_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    kind: (MICRONET_MEAN, MICRONET_STD) for kind in WEIGHT_KINDS}


def input_standardization(weights: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per input channel for ``weights``' standardization ``(x - mean) / std`` of [0, 1] inputs:
    the published R, G, B values for 3 channels; otherwise their average for every channel (a grey image is
    the same intensity in R, G and B, and smp folds the first convolution's RGB filters into the channels)."""
    if weights not in INPUT_STATS:
        raise UserError(f"normalization: expected input statistics of one of {', '.join(INPUT_STATS)}, "
                        f"found {weights!r}")
    mean, std = INPUT_STATS[weights]
    if channels == len(mean):
        return tuple(mean), tuple(std)
    return (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels


def micronet_filename(encoder: str, weights: str) -> str:
    """Bucket file name of ``encoder``'s ``weights`` ("micronet" or "imagenet-micronet"); version 1.1 exists only
    for resnet50/micronet, everything else is 1.0."""
    if weights not in WEIGHT_KINDS:
        raise UserError(f"encoder_weights: expected one of {', '.join(WEIGHT_KINDS)}, found {weights!r}")
    version = "1.1" if (encoder, weights) == ("resnet50", "micronet") else "1.0"
    return f"{encoder}_pretrained_{WEIGHT_KINDS[weights]}_v{version}.pth.tar"


def micronet_cache_dir() -> Path:
    """``<weights cache>/micronet`` beside the Hugging Face hub cache the ImageNet weights use."""
    from matseg_nb.weights_cache import hub_cache_dir

    return hub_cache_dir() / "micronet"


def _cache_name(encoder: str, weights: str) -> str:
    """Cached file name: the bucket's ``.pth.tar`` (a plain ``torch.save`` state dict) stored as ``.pth``."""
    return micronet_filename(encoder, weights).removesuffix(".tar")


def cached_micronet(encoder: str, weights: str) -> Path | None:
    """The cached file for (encoder, weights), or None."""
    path = micronet_cache_dir() / _cache_name(encoder, weights)
    return path if path.is_file() else None


def fetch_command(encoder: str, weights: str) -> str:
    return f"matseg weights fetch {encoder} --source {weights}"


def micronet_weights_path(encoder: str, weights: str) -> Path:
    """The cached MicroNet file training loads; UserError naming the fetch command when absent (never downloads)."""
    path = cached_micronet(encoder, weights)
    if path is None:
        raise UserError(f"encoder_weights: expected {weights} weights for encoder {encoder!r} in "
                        f"{micronet_cache_dir()}, found none (training never downloads); run "
                        f"`{fetch_command(encoder, weights)}` once (needs internet)")
    return path


def fetch_micronet(encoder: str, weights: str = "micronet", endpoint: str | None = None) -> dict:
    """Download one MicroNet file into :func:`micronet_cache_dir` (atomic) and check it: the server's ETag when
    it is an MD5 (single-part upload) must equal the file's MD5; its SHA-256 is recorded beside it
    (``.sha256``) and a later fetch that differs is refused. Returns {encoder, weights, url, path, sha256,
    size, verified}."""
    name = micronet_filename(encoder, weights)
    base = (endpoint or os.environ.get("MATSEG_MICRONET_ENDPOINT") or MICRONET_ENDPOINT).rstrip("/")
    url = f"{base}/{name}"
    folder = micronet_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    md5, sha = hashlib.md5(), hashlib.sha256()  # noqa: S324 - MD5 only to compare with the S3 ETag
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:  # noqa: S310
            etag = (response.headers.get("ETag") or "").strip('"').lower()
            while block := response.read(1 << 20):
                md5.update(block)
                sha.update(block)
                out.write(block)
    except OSError as err:  # URLError, HTTPError, timeouts
        tmp.unlink(missing_ok=True)
        raise UserError(f"{url}: expected a download, found {type(err).__name__}: {err}") from None
    verified = len(etag) == 32 and "-" not in etag
    if verified and md5.hexdigest() != etag:
        tmp.unlink()
        raise UserError(f"{url}: expected MD5 {etag} (server ETag), found {md5.hexdigest()}; download refused")
    pinned = folder / f"{_cache_name(encoder, weights)}.sha256"
    if pinned.is_file() and pinned.read_text().split()[0] != sha.hexdigest():
        tmp.unlink()
        raise UserError(f"{url}: expected SHA-256 {pinned.read_text().split()[0]} ({pinned}), found "
                        f"{sha.hexdigest()}; download refused")
    path = folder / _cache_name(encoder, weights)
    os.replace(tmp, path)
    pinned.write_text(f"{sha.hexdigest()}  {name}\n")
    return {"encoder": encoder, "weights": weights, "url": url, "path": str(path), "sha256": sha.hexdigest(),
            "size": path.stat().st_size, "verified": verified}
