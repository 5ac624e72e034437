"""``matseg weights fetch ENCODER... | list``: download ImageNet encoder weights on request; show the cache."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="fetch ImageNet encoder weights (explicit download) or list the cache")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    f = sub.add_parser("fetch", help="download and verify ImageNet weights into the Hugging Face cache")
    f.add_argument("encoders", nargs="+", metavar="ENCODER", help="e.g. resnet50 se_resnext101_32x4d tu-convnext_tiny")
    f.add_argument("--source", choices=("imagenet", "micronet", "imagenet-micronet"), default="imagenet",
                   help="imagenet (Hugging Face) or MicroNet from NASA's public bucket (default imagenet)")
    f.set_defaults(func=fetch_handler)
    sub.add_parser("list", help="list the model repos in the Hugging Face cache").set_defaults(func=list_handler)


def fetch_handler(args: argparse.Namespace) -> int:
    from matseg_nb.models.weights import fetch_imagenet, hub_cache_dir

    if getattr(args, "source", "imagenet") != "imagenet":
        from matseg_nb.micronet import fetch_micronet

        for encoder in args.encoders:
            got = fetch_micronet(encoder, args.source)
            checked = "MD5 matches the server's ETag" if got["verified"] else "no server MD5; SHA-256 pinned"
            print(f"{encoder}: {args.source} ({got['size'] / 1e6:.1f} MB, {checked}) at {got['path']}")
        return 0
    for encoder in args.encoders:
        report = fetch_imagenet(encoder)
        size = sum(f["size"] for f in report["files"]) / 1e6
        checked = "sha256 verified" if all(f["verified"] for f in report["files"]) else "no Hub checksum to verify"
        print(f"{encoder}: {report['repo_id']} ({size:.1f} MB, {checked}) in {hub_cache_dir()}")
    return 0


def list_handler(args: argparse.Namespace) -> int:
    from matseg_nb.models.weights import hub_cache_dir, list_cached

    rows = list_cached()
    print(f"cache: {hub_cache_dir()}")
    if not rows:
        print("  (empty)")
    for r in rows:
        print(f"  {r['repo_id']:40} {r['size_bytes'] / 1e6:8.1f} MB  {', '.join(r['files'])}")
    return 0
