"""ipywidgets views (profile editor, painter canvas, dashboard app) over models in ``matseg_nb``.

Example: ``from matseg_nb.widgets.profile_editor import ProfileEditor``.
"""
