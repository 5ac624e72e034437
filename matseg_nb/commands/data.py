"""``matseg data list | check | preview | schema``: dataset manifests and plain data folders."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="list, check and preview datasets (manifests or plain folders)")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    sub.add_parser("list", help="list the known dataset manifests").set_defaults(func=list_handler)

    c = sub.add_parser("check", help="check every pair; print pairs per split and per-class pixel fractions")
    c.add_argument("dataset", metavar="NAME|MANIFEST|DIR")
    c.add_argument("--json", default=None, metavar="FILE", help="also write the summary as JSON")
    c.set_defaults(func=check_handler)

    v = sub.add_parser("preview", help="write image/mask overlays of a few samples to a PNG")
    v.add_argument("dataset", metavar="NAME|MANIFEST|DIR")
    v.add_argument("--out", required=True, metavar="FILE.png")
    v.add_argument("-n", type=int, default=4, help="number of samples (default 4)")
    v.set_defaults(func=preview_handler)

    s = sub.add_parser("schema", help="write the manifest JSON Schema (default data_manifests/schema.json)")
    s.add_argument("--out", default=None)
    s.set_defaults(func=schema_handler)


def list_handler(args: argparse.Namespace) -> int:
    from matseg_nb.data import list_manifests, load_manifest

    rows = [load_manifest(name) for name in list_manifests()]
    print(f"{'name':20} {'modality':8} {'classes':7} {'availability':20} title")
    for m in rows:
        print(f"{m.name:20} {m.modality:8} {len(m.classes):<7} {m.availability:20} {m.title}")
    return 0


def format_summary(d: dict, notes: dict[str, str] | None = None) -> list[str]:
    """Human-readable lines of :meth:`Dataset.describe`."""
    lines = [f"{d['name']}: {d['modality']}, {d['material']}, {d['in_channels']} channel(s), classes {d['classes']}"]
    for split, s in d["splits"].items():
        sizes = ", ".join(f"{k} x{v}" for k, v in s["image_sizes"].items()) or "-"
        fr = "  ".join(f"{k}={v:.4f}" for k, v in s["class_fractions"].items())
        lines.append(f"  {split:5} {s['pairs']:4d} pairs  [{sizes}]  {fr}")
    for path in d["missing"]:
        note = (notes or {}).get(path)
        lines.append(f"  missing: {path}{f' ({note})' if note else ''}")
    return lines


PIXEL_SIZE_SPREAD = 0.10  # warn when a folder's pixel sizes differ by more than this fraction


def pixel_sizes(ds) -> list[dict]:
    """Per image: file, pixel size (+ unit, µm), channel names, bit depth, instrument."""
    from matseg_nb.data.formats import read_file
    from matseg_nb.errors import UserError

    rows, seen = [], set()
    for sample in ds.samples():
        if sample.image in seen:
            continue
        seen.add(sample.image)
        try:
            meta = read_file(sample.image).metadata() if sample.slice_index is None else {"pixel_size_um": None}
        except UserError:  # unreadable files are reported by the pair check
            continue
        rows.append({"image": str(sample.image), **meta})
    return rows


def pixel_size_lines(rows: list[dict]) -> tuple[list[str], str | None]:
    """Summary lines and a warning when known pixel sizes differ by more than 10%."""
    known = [r["pixel_size_um"] for r in rows if r.get("pixel_size_um")]
    if not known:
        return ["  pixel size: unknown (no calibration in the files)"], None
    lo, hi = min(known), max(known)
    first = next(r for r in rows if r.get("pixel_size_um"))
    instruments = sorted({r["instrument"] for r in rows if r.get("instrument")})
    line = (f"  pixel size: {lo:.6g}..{hi:.6g} um ({len(known)}/{len(rows)} image(s) calibrated, "
            f"{first['pixel_size']:.6g} {first['pixel_unit']} in {first['image']})")
    lines = [line] + ([f"  instrument: {', '.join(instruments)}"] if instruments else [])
    warning = None
    if hi > lo * (1 + PIXEL_SIZE_SPREAD):
        small = next(r["image"] for r in rows if r.get("pixel_size_um") == lo)
        large = next(r["image"] for r in rows if r.get("pixel_size_um") == hi)
        warning = (f"warning: pixel sizes differ by {100 * (hi / lo - 1):.0f}% (> {100 * PIXEL_SIZE_SPREAD:.0f}%): "
                   f"{lo:.6g} um in {small}, {hi:.6g} um in {large}; a magnification change is a distribution shift")
    return lines, warning


def check_handler(args: argparse.Namespace) -> int:
    from matseg_nb.atomic import atomic_write_json
    from matseg_nb.data import open_dataset
    from matseg_nb.errors import UserError

    ds = open_dataset(args.dataset)
    summary = ds.describe(full=True, progress=True)  # a bar on stderr over the pairs
    print("\n".join(format_summary(summary, ds.missing_notes)))
    from matseg_nb.data.decode import mask_mapping_lines, mask_mapping_record

    mapping = mask_mapping_lines(ds.manifest)
    print("  mask classes: " + "; ".join(mapping))
    rows = pixel_sizes(ds)
    lines, warning = pixel_size_lines(rows)
    print("\n".join(lines))
    if warning:
        print(warning, file=sys.stderr)
    summary = {**summary, "mask_mapping": mapping, "mask_mapping_record": mask_mapping_record(ds), "images": rows,
               "pixel_size_warning": warning}
    if args.json:
        atomic_write_json(args.json, summary)
    if summary["problems"]:
        raise UserError(*summary["problems"])
    print(f"ok: {sum(s['pairs'] for s in summary['splits'].values())} pairs checked"
          + (f", {len(ds.missing)} listed file(s) missing" if ds.missing else ""))
    return 0


def preview_handler(args: argparse.Namespace) -> int:
    from matseg_nb.data import open_dataset
    from matseg_nb.data.preview import save_preview

    print(save_preview(open_dataset(args.dataset), args.out, n=args.n))
    return 0


def schema_handler(args: argparse.Namespace) -> int:
    from matseg_nb.data.schema import main

    return main([args.out] if args.out else [])


if __name__ == "__main__":  # pragma: no cover
    from matseg_nb.cli import main as cli_main

    sys.exit(cli_main(["data", *sys.argv[1:]]))
