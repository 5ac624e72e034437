"""In-memory splits, random-crop training data and full-image evaluation data for one dataset."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


@dataclass
class Split:
    """Normalised images (C, H, W) float32 in [0, 1], masks (H, W) int64, names (sample ids)."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)


def load_split(ds, split: str, normalization: str = "percentile") -> Split:
    """Read every sample of ``split`` from a ``matseg_nb.data`` dataset into memory, normalised to [0, 1]."""
    from matseg_nb.data import normalize_image

    samples = [s for s in ds.samples(split) if s.mask is not None]
    images = [normalize_image(ds.load_image(s), normalization) for s in samples]
    masks = [ds.load_mask(s).astype(np.int64) for s in samples]
    return Split(images, masks, [s.name for s in samples])


def rescale_split(split: Split, scale: float) -> Split:
    """``split`` resampled by ``scale`` (images: area averaging; masks: nearest), or itself when scale is 1."""
    if float(scale) == 1.0:
        return split
    import torch.nn.functional as F

    def size(hw: tuple[int, ...]) -> list[int]:
        return [max(1, int(round(n * scale))) for n in hw]

    images = [F.interpolate(torch.from_numpy(i)[None], size=size(i.shape[-2:]), mode="area")[0].numpy()
              for i in split.images]
    masks = [F.interpolate(torch.from_numpy(m)[None, None].float(), size=size(m.shape), mode="nearest")[0, 0]
             .to(torch.int64).numpy() for m in split.masks]
    return Split(images, masks, list(split.names))


def _pad_to(img: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    ph, pw = max(0, size - img.shape[1]), max(0, size - img.shape[2])
    if ph or pw:
        img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        mask = np.pad(mask, ((0, ph), (0, pw)), mode="reflect")
    return img, mask


class CropDataset(Dataset):
    """``length`` random ``crop`` x ``crop`` crops (image, mask) with flips / rot90 / intensity jitter.

    A share ``foreground_fraction`` of the crops is centred (with a random shift of up to a quarter crop) on a
    pixel of a foreground class (ids >= 1) drawn uniformly among the classes present in the split, so that
    rare classes (EBC1 cracks, 0.3% of pixels) appear in most batches. Randomness comes from torch's global
    generator (seeded by ``lightning.seed_everything``; with DataLoader workers, Lightning seeds each worker),
    so runs are repeatable.
    """

    #: foreground pixel positions kept per image and class for centring crops
    MAX_POSITIONS = 20000

    def __init__(self, split: Split, crop: int, length: int, aug: dict | None = None,
                 foreground_fraction: float = 0.0) -> None:
        self.split, self.crop, self.length = split, crop, max(1, length)
        self.aug = aug or {}
        self.foreground_fraction = float(foreground_fraction)
        self.positions = self._foreground_positions() if self.foreground_fraction > 0 else {}

    def _foreground_positions(self) -> dict[int, list[tuple[int, np.ndarray]]]:
        """class id -> [(image index, flat pixel indices (N,) of that class, at most MAX_POSITIONS)]."""
        rng = np.random.default_rng(0)
        out: dict[int, list[tuple[int, np.ndarray]]] = {}
        for i, mask in enumerate(self.split.masks):
            for c in np.unique(mask):
                if c < 1:
                    continue
                flat = np.flatnonzero(mask == c)
                if flat.size > self.MAX_POSITIONS:
                    flat = np.sort(rng.choice(flat, self.MAX_POSITIONS, replace=False))
                out.setdefault(int(c), []).append((i, flat))
        return out

    def __len__(self) -> int:
        return self.length

    def _corner(self, h: int, w: int) -> tuple[int, int]:
        return int(torch.randint(h - self.crop + 1, ()).item()), int(torch.randint(w - self.crop + 1, ()).item())

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        centre = None
        if self.positions and float(torch.rand(())) < self.foreground_fraction:
            classes = sorted(self.positions)
            entries = self.positions[classes[int(torch.randint(len(classes), ()).item())]]
            i, flat = entries[int(torch.randint(len(entries), ()).item())]
            centre = divmod(int(flat[int(torch.randint(len(flat), ()).item())]), self.split.masks[i].shape[1])
        else:
            i = int(torch.randint(len(self.split), ()).item())
        img, mask = _pad_to(self.split.images[i], self.split.masks[i], self.crop)
        h, w = mask.shape
        if centre is None:
            y, x = self._corner(h, w)
        else:
            shift = torch.randint(-(self.crop // 4), self.crop // 4 + 1, (2,))
            y = min(max(centre[0] - self.crop // 2 + int(shift[0]), 0), h - self.crop)
            x = min(max(centre[1] - self.crop // 2 + int(shift[1]), 0), w - self.crop)
        img_t = torch.from_numpy(np.ascontiguousarray(img[:, y : y + self.crop, x : x + self.crop]))
        mask_t = torch.from_numpy(np.ascontiguousarray(mask[y : y + self.crop, x : x + self.crop]))
        return augment(img_t, mask_t, self.aug)


def augment(img: torch.Tensor, mask: torch.Tensor, aug: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, rot90 and brightness/contrast/noise (keys of the profile's ``augmentations``)."""
    r = torch.rand(6)
    if aug.get("hflip", True) and r[0] < 0.5:
        img, mask = img.flip(-1), mask.flip(-1)
    if aug.get("vflip", True) and r[1] < 0.5:
        img, mask = img.flip(-2), mask.flip(-2)
    if aug.get("rot90", True):
        k = int(r[2] * 4) % 4
        img, mask = torch.rot90(img, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
    b, c, n = float(aug.get("brightness", 0.0)), float(aug.get("contrast", 0.0)), float(aug.get("gaussian_noise", 0.0))
    if c > 0:
        img = (img - img.mean()) * (1 + c * (2 * float(r[3]) - 1)) + img.mean()
    if b > 0:
        img = img + b * (2 * float(r[4]) - 1)
    if n > 0:
        img = img + n * torch.randn_like(img)
    return img.contiguous().float(), mask.contiguous()


def centre_crop(img: np.ndarray, mask: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Central ``size`` x ``size`` crop of img (C, H, W) and mask (H, W); a side shorter than size stays whole."""
    if not size:
        return img, mask
    h, w = mask.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    rows, cols = slice(top, top + min(size, h)), slice(left, left + min(size, w))
    return img[:, rows, cols], mask[rows, cols]


class FullImageDataset(Dataset):
    """Images (C, H, W) and masks (H, W) of a split, whole or centre-cropped to ``crop``, for tiled evaluation
    (batch size 1)."""

    def __init__(self, split: Split, crop: int | None = None) -> None:
        self.split, self.crop = split, crop

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, mask = centre_crop(self.split.images[i], self.split.masks[i], self.crop)
        return torch.from_numpy(np.ascontiguousarray(img)), torch.from_numpy(np.ascontiguousarray(mask))


class SegDataModule(L.LightningDataModule):
    """Train: random crops (``steps_per_epoch`` x ``batch_size`` per epoch, or one crop per image) of the
    training images resampled by ``input_scale``; val: whole images at full resolution (or their centre
    crops of ``val_crop_size``), one per batch (``SegModule`` applies the scale when it predicts)."""

    def __init__(self, train: Split, val: Split, training: dict, seed: int = 0) -> None:
        super().__init__()
        self.train_split = rescale_split(train, training.get("input_scale", 1.0))
        self.val_split, self.cfg, self.seed = val, training, seed

    def train_dataloader(self) -> DataLoader:
        bs, steps = self.cfg["batch_size"], self.cfg.get("steps_per_epoch")
        length = max(len(self.train_split), steps * bs if steps else 0)
        ds = CropDataset(self.train_split, self.cfg["crop_size"], length, self.cfg.get("augmentations"),
                         self.cfg.get("foreground_crop_fraction", 0.0))
        workers = self.cfg.get("num_workers", 0)
        return DataLoader(ds, batch_size=bs, shuffle=False, num_workers=workers, drop_last=False,
                          persistent_workers=workers > 0)

    def val_dataloader(self) -> DataLoader:
        ds = FullImageDataset(self.val_split, self.cfg.get("val_crop_size"))
        return DataLoader(ds, batch_size=1, shuffle=False, num_workers=0)
