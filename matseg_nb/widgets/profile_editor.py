"""Profile editor: a state model (:class:`ProfileEditorModel`, no widgets) and its ipywidgets view
(:class:`ProfileEditor`), AiiDAlab style: the view only reads/writes the model; the model validates.

The model holds the profile as raw JSON data (what is saved), validates it with
``matseg_nb.profiles.profile_from_dict`` on every change and keeps the problems as lines.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import ipywidgets as w
import traitlets

from matseg_nb.atomic import atomic_write_json
from matseg_nb.errors import UserError
from matseg_nb.profiles.starter import (  # noqa: F401 - re-exported for the editor's users
    MATERIAL_FROM_MANIFEST,
    _dataset_entry,
    default_profile,
    manifest_choices,
    starter_profile,
)
from matseg_nb.vocabulary import MATERIAL_CLASSES as MATERIALS
from matseg_nb.vocabulary import METRICS, MODALITIES

#: encoders offered in the grid picker (the profile may name any other smp / tu- encoder).
ENCODERS = (
    "tu-test_resnet", "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "se_resnext50_32x4d",
    "se_resnext101_32x4d", "efficientnet-b0", "efficientnet-b4", "mit_b0", "mobilenet_v2",
)
DECODERS = ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3", "DeepLabV3Plus", "PSPNet", "Linknet", "MAnet", "PAN")
#: training fields edited in the view: name -> (widget kind, description)
TRAINING_FIELDS: dict[str, tuple[str, str]] = {
    "max_epochs": ("int", "max epochs"),
    "batch_size": ("int", "batch size"),
    "lr": ("float", "learning rate"),
    "crop_size": ("int", "crop (px)"),
    "tile_size": ("int", "tile (px)"),
    "steps_per_epoch": ("int", "steps/epoch (0 = all)"),
    "early_stopping_patience": ("int", "patience"),
}


class ProfileEditorModel(traitlets.HasTraits):
    """State of the editor: raw profile ``data``, validation ``problems`` (lines) and ``saved_path``.

    ``data`` is replaced (never mutated in place) so observers fire; every change re-validates.
    """

    data = traitlets.Dict()
    problems = traitlets.List(traitlets.Unicode())
    saved_path = traitlets.Unicode("")
    message = traitlets.Unicode("")

    def __init__(self, data: dict | None = None, base_dir: str | os.PathLike | None = None,
                 workspace: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.base_dir = Path(base_dir) if base_dir else None
        self.workspace = Path(workspace) if workspace else None
        self.observe(lambda _change: self.validate(), names="data")
        self.data = copy.deepcopy(data) if data is not None else default_profile()
        self.validate()

    # -- loading / editing -------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> ProfileEditorModel:
        """Model for the profile JSON at ``path`` (UserError when it is not JSON)."""
        from matseg_nb.profiles import parse_json

        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: expected a profile JSON file, found nothing at that path")
        model = cls(parse_json(path.read_text(encoding="utf-8"), str(path)), base_dir=path.resolve().parent,
                    workspace=workspace)
        model.saved_path = str(path.resolve())
        return model

    def get(self, *keys: str | int, default: Any = None) -> Any:
        """Value at a key path, e.g. ``get("training", "lr")``; ``default`` when absent."""
        node: Any = self.data
        for k in keys:
            try:
                node = node[k]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def set(self, *keys_and_value: Any) -> None:
        """``set("training", "lr", 1e-3)``: set a value at a key path (creating dicts); ``None`` deletes."""
        *keys, value = keys_and_value
        data = copy.deepcopy(self.data)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
        if value is None and isinstance(node, dict):
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
        self.data = data

    def set_datasets(self, names: list[str]) -> None:
        """Pick datasets by manifest name, keeping the entries (context) of datasets already chosen."""
        old = {e.get("ref"): e for e in self.get("dataset", default=[]) if isinstance(e, dict)}
        self.set("dataset", [old.get(n) or _dataset_entry(n) for n in names])

    def set_context(self, modality: str | None = None, material_class: str | None = None,
                    material_text: str | None = None) -> None:
        """Set modality / material on every chosen dataset."""
        entries = copy.deepcopy(self.get("dataset", default=[]))
        for e in entries:
            if modality is not None:
                e["modality"] = modality
            mat = e.setdefault("material", {"class": "other", "text": ""})
            if material_class is not None:
                mat["class"] = material_class
            if material_text is not None:
                mat["text"] = material_text
        self.set("dataset", entries)

    # -- validation / saving -----------------------------------------------------------------------

    def validate(self) -> list[str]:
        """Validate ``data``; sets and returns ``problems`` (empty when valid)."""
        from matseg_nb.profiles import profile_from_dict

        try:
            profile_from_dict(self.data, base_dir=self.base_dir, source="profile")
        except UserError as err:
            self.problems = list(err.problems)
        except Exception as err:  # noqa: BLE001 - shown to the user as a line, never raised in the UI
            self.problems = [f"profile: {type(err).__name__}: {err}"]
        else:
            self.problems = []
        return list(self.problems)

    @property
    def valid(self) -> bool:
        return not self.problems

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``data`` as JSON atomically; refuses an invalid profile or a path outside the workspace."""
        if self.workspace is not None:
            from matseg_nb.report.workspace import resolve_in_workspace

            target = resolve_in_workspace(self.workspace, path)
        else:
            target = Path(path).expanduser().resolve()
        if target.suffix.lower() != ".json":
            raise UserError(f"save path {path}: expected a file name ending in .json, found {target.name!r}")
        if self.validate():
            raise UserError(*[f"not saved: {p}" for p in self.problems])
        atomic_write_json(target, self.data)
        self.saved_path = str(target)
        self.message = f"saved {target}"
        return target

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=True)


# ------------------------------------------------------------------------------------------------ view


class ProfileEditor(w.VBox):
    """ipywidgets form over a :class:`ProfileEditorModel` with live validation, save and data preview."""

    def __init__(self, model: ProfileEditorModel | None = None, save_to: str = "",
                 dataset_choices: list[str] | None = None, **kwargs: Any) -> None:
        self.model = model or ProfileEditorModel()
        m = self.model
        lay = w.Layout(width="420px")
        style = {"description_width": "140px"}
        self.name = w.Text(value=str(m.get("name", default="")), description="profile name", layout=lay, style=style)
        choices = manifest_choices() if dataset_choices is None else list(dataset_choices)
        chosen = [e.get("ref") for e in m.get("dataset", default=[]) if isinstance(e, dict)]
        self.datasets = w.SelectMultiple(options=list(dict.fromkeys([*choices, *chosen])), value=tuple(chosen),
                                         description="datasets", rows=min(8, max(3, len(choices))),
                                         layout=lay, style=style)
        first = (m.get("dataset", default=[{}]) or [{}])[0]
        self.modality = w.Dropdown(options=MODALITIES, value=_opt(first.get("modality"), MODALITIES),
                                   description="modality", layout=lay, style=style)
        mat = first.get("material", {}) or {}
        self.material = w.Dropdown(options=MATERIALS, value=_opt(mat.get("class"), MATERIALS),
                                   description="material class", layout=lay, style=style)
        self.material_text = w.Text(value=str(mat.get("text", "")), description="material", layout=lay, style=style)
        self.objective = w.Textarea(value=str(m.get("task", "objective", default="")), description="task",
                                    layout=w.Layout(width="420px", height="60px"), style=style)
        self.metrics = w.SelectMultiple(options=METRICS, value=tuple(x for x in m.get("task", "metrics", default=[])
                                                                     if x in METRICS),
                                        description="metrics", rows=4, layout=lay, style=style)
        self.primary = w.Dropdown(options=METRICS, value=_opt(m.get("task", "primary_metric"), METRICS),
                                  description="primary metric", layout=lay, style=style)
        encs = list(m.get("model", "encoders", default=[]))
        decs = list(m.get("model", "decoders", default=[]))
        self.encoders = w.SelectMultiple(options=list(dict.fromkeys([*ENCODERS, *encs])), value=tuple(encs),
                                         description="encoders", rows=6, layout=lay, style=style)
        self.decoders = w.SelectMultiple(options=list(dict.fromkeys([*DECODERS, *decs])), value=tuple(decs),
                                         description="decoders", rows=6, layout=lay, style=style)
        weights = str(m.get("model", "encoder_weights", default="none"))
        self.weights = w.Dropdown(options=list(dict.fromkeys(["none", "imagenet", weights])), value=weights,
                                  description="encoder weights", layout=lay, style=style)
        self.training: dict[str, w.Widget] = {}
        for key, (kind, desc) in TRAINING_FIELDS.items():
            value = m.get("training", key, default=_training_default(key))
            widget_cls = w.IntText if kind == "int" else w.FloatText
            self.training[key] = widget_cls(value=value or 0, description=desc, layout=lay, style=style)
        self.seeds = w.Text(value=", ".join(str(s) for s in m.get("seeds", default=[0])), description="seeds",
                            layout=lay, style=style)
        self.problems = w.HTML()
        self.save_path = w.Text(value=save_to or m.saved_path or "profile.json", description="save to",
                                layout=lay, style=style)
        self.save_button = w.Button(description="Save", button_style="primary", icon="save")
        self.status = w.HTML()
        self.preview_button = w.Button(description="Preview data", icon="image")
        self.preview = w.HTML()
        self.preview_image = w.Image(format="png", layout=w.Layout(max_width="900px", display="none"))
        self._wire()
        self._show_problems()
        grid = w.HBox([
            w.VBox([w.HTML("<b>Data and context</b>"), self.name, self.datasets, self.modality, self.material,
                    self.material_text, w.HTML("<b>Task</b>"), self.objective, self.metrics, self.primary]),
            w.VBox([w.HTML("<b>Models (encoder x decoder grid)</b>"), self.encoders, self.decoders, self.weights,
                    w.HTML("<b>Training</b>"), *self.training.values(), self.seeds]),
        ])
        super().__init__([grid, self.problems, w.HBox([self.save_path, self.save_button]), self.status,
                          self.preview_button, self.preview, self.preview_image], **kwargs)

    # -- wiring ------------------------------------------------------------------------------------

    def _wire(self) -> None:
        m = self.model
        self.name.observe(lambda c: m.set("name", c["new"]), names="value")
        self.datasets.observe(lambda c: m.set_datasets(list(c["new"])), names="value")
        self.modality.observe(lambda c: m.set_context(modality=c["new"]), names="value")
        self.material.observe(lambda c: m.set_context(material_class=c["new"]), names="value")
        self.material_text.observe(lambda c: m.set_context(material_text=c["new"]), names="value")
        self.objective.observe(lambda c: m.set("task", "objective", c["new"]), names="value")
        self.metrics.observe(lambda c: m.set("task", "metrics", list(c["new"])), names="value")
        self.primary.observe(lambda c: m.set("task", "primary_metric", c["new"]), names="value")
        self.encoders.observe(lambda c: m.set("model", "encoders", list(c["new"])), names="value")
        self.decoders.observe(lambda c: m.set("model", "decoders", list(c["new"])), names="value")
        self.weights.observe(lambda c: m.set("model", "encoder_weights", c["new"]), names="value")
        for key, widget in self.training.items():
            widget.observe(lambda c, key=key: m.set("training", key, _training_value(key, c["new"])), names="value")
        self.seeds.observe(lambda c: m.set("seeds", _parse_seeds(c["new"])), names="value")
        m.observe(lambda _c: self._show_problems(), names="problems")
        self.save_button.on_click(lambda _b: self.save())
        self.preview_button.on_click(lambda _b: self.show_preview())

    def _show_problems(self) -> None:
        if self.model.problems:
            lines = "".join(f"<li>{_esc(p)}</li>" for p in self.model.problems)
            self.problems.value = f"<div class='matseg-problems' style='color:#8a1c1c'><b>Problems:</b><ul>{lines}</ul></div>"
        else:
            self.problems.value = "<div class='matseg-valid' style='color:#17602c'>profile is valid</div>"

    def save(self) -> Path | None:
        """Save to the path in the form; shows the outcome (or the problems) in ``status``."""
        try:
            path = self.model.save(self.save_path.value)
        except UserError as err:
            self.status.value = "<div class='matseg-error' style='color:#8a1c1c'>" + "<br>".join(
                _esc(p) for p in err.problems) + "</div>"
            return None
        self.status.value = f"<div class='matseg-saved' style='color:#17602c'>saved {_esc(str(path))}</div>"
        return path

    def show_preview(self, n: int = 2) -> None:
        """Preview images + masks of the first chosen dataset (PNG in ``preview_image``)."""
        names = [e.get("ref") for e in self.model.get("dataset", default=[]) if isinstance(e, dict)]
        if not names:
            self.preview.value = "<i>choose a dataset first</i>"
            return
        try:
            from matseg_nb.data import open_dataset
            from matseg_nb.data.preview import preview_figure
            from matseg_nb.figures import figure_png

            png = figure_png(preview_figure(open_dataset(names[0], base_dir=self.model.base_dir), n=n), dpi=60)
        except Exception as err:  # noqa: BLE001 - shown, not raised, in the UI
            self.preview.value = f"<span style='color:#8a1c1c'>preview of {_esc(str(names[0]))} failed: {_esc(str(err))}</span>"
            return
        self.preview_image.value = png
        self.preview_image.layout.display = ""
        self.preview.value = f"preview of {_esc(str(names[0]))}"


def _opt(value: Any, options: tuple[str, ...]) -> str:
    return value if value in options else options[-1] if "other" in options else options[0]


def _training_default(key: str) -> Any:
    """Schema default of a training field (shown when the profile leaves it out)."""
    try:
        from matseg_nb.profiles import TrainingConfig

        return getattr(TrainingConfig(), key)
    except Exception:  # noqa: BLE001
        return 0


def _training_value(key: str, value: Any) -> Any:
    """``steps_per_epoch`` 0 means "one pass" (null in the profile)."""
    return None if key == "steps_per_epoch" and not value else value


def _parse_seeds(text: str) -> Any:
    """``"0, 1"`` -> ``[0, 1]``; anything unparsable is kept as text so validation reports it."""
    try:
        return [int(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        return text


def _esc(text: str) -> str:
    import html

    return html.escape(text)
