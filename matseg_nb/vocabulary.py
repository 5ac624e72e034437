"""The words every schema, table and widget shares: imaging modality, material class, metric, difficulty.

The profile schema (``matseg_nb.profiles.schema``), the dataset-manifest schema (``matseg_nb.data.schema``)
and the widgets import these; nothing else defines them. Material classes are the paper's Table 1 names
(plural); the singular forms (``metal``, ``ceramic`` ...) are accepted on input and normalised.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator

Modality = Literal["SEM", "AFM", "XCT", "Optical", "other"]
MaterialClassName = Literal["metals", "polymers", "semiconductors", "ceramics", "composites", "carbon", "other"]
Metric = Literal["iou", "dice", "wiou", "pixel_accuracy"]
Difficulty = Literal["Easy", "Moderate", "Hard", "Very Hard"]

MODALITIES: tuple[str, ...] = get_args(Modality)
MATERIAL_CLASSES: tuple[str, ...] = get_args(MaterialClassName)
METRICS: tuple[str, ...] = get_args(Metric)
DIFFICULTIES: tuple[str, ...] = get_args(Difficulty)

#: singular material words (older manifests) -> the Table 1 name
MATERIAL_ALIASES: dict[str, str] = {
    "metal": "metals", "ceramic": "ceramics", "polymer": "polymers", "semiconductor": "semiconductors",
    "composite": "composites",
}


def normalise_material(value: Any) -> Any:
    """``"metal"`` -> ``"metals"`` (any case of a known word); anything else unchanged for validation."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in MATERIAL_CLASSES:
            return low
        return MATERIAL_ALIASES.get(low, value)
    return value


#: the material class field type of both schemas (validates against :data:`MATERIAL_CLASSES`)
MaterialClass = Annotated[MaterialClassName, BeforeValidator(normalise_material)]
