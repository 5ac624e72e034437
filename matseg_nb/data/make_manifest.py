"""Build the ``pairs`` list of a manifest from an upstream ``<set>/<split>[_annot]/`` layout.

Used to write ``data_manifests/nasa-*.yaml`` from the real files::

    python -m matseg_nb.data.make_manifest <upstream_root> Super1 _mask > pairs.yaml

Files present on only one side (an annotation whose image is absent) are listed with
``sha256: null`` and a note, so the dataset reports them as missing instead of failing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from matseg_nb.data.resolve import sha256_of
from matseg_nb.data.schema import SPLITS

ABSENT_NOTE = "listed upstream, absent from the mirror"


def _ref(root: Path, rel: str) -> dict:
    path = root / rel
    if path.is_file():
        return {"path": rel, "sha256": sha256_of(path)}
    return {"path": rel, "sha256": None, "note": ABSENT_NOTE}


def upstream_pairs(root: Path, set_name: str, mask_suffix: str = "", ext: str = ".tif") -> list[dict]:
    """Pairs for ``<root>/<set_name>/<split>/<stem><ext>`` + ``<split>_annot/<stem><mask_suffix><ext>``."""
    pairs = []
    for split in SPLITS:
        img_dir, ann_dir = root / set_name / split, root / set_name / f"{split}_annot"
        stems = {p.stem for p in img_dir.glob(f"*{ext}")}
        stems |= {p.stem[: len(p.stem) - len(mask_suffix)] if mask_suffix else p.stem for p in ann_dir.glob(f"*{ext}")}
        for stem in sorted(stems):
            pairs.append({
                "split": split,
                "image": _ref(root, f"{set_name}/{split}/{stem}{ext}"),
                "mask": _ref(root, f"{set_name}/{split}_annot/{stem}{mask_suffix}{ext}"),
            })
    return pairs


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root, set_name = Path(args[0]), args[1]
    suffix = args[2] if len(args) > 2 else ""
    yaml.safe_dump({"pairs": upstream_pairs(root, set_name, suffix)}, sys.stdout, sort_keys=False, width=200)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
