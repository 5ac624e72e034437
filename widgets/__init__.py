"""ipywidgets views (profile editor, painter canvas, dashboard app) over models in ``matseg_nb``.

Import from the repository root (``sys.path`` must hold it), e.g.
``from widgets.profile_editor import ProfileEditor``.
"""
