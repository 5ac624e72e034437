"""The dashboard's actions without widgets: one workspace, one loop per profile, the demo's stage functions.

- :mod:`matseg_nb.dashboard.actions`: :class:`~matseg_nb.dashboard.actions.DashboardState` (workspace paths,
  profiles, the detached sweep, the analyses). Every analysis builds the loop's
  :class:`~matseg_nb.pipeline.DemoContext` (:func:`~matseg_nb.pipeline.loop_context`) over
  ``<ws>/runs/<profile name>`` and calls the same stage function as ``matseg demo`` and the notebooks
  (``stage_compare``, ``stage_qc``, ``stage_explain``, ``stage_report``), so the dashboard writes the same
  :class:`~matseg_nb.loop.LoopLayout` with the same stage settings.
- :mod:`matseg_nb.dashboard.worker` runs one analysis in a detached process that outlives the page;
  :mod:`matseg_nb.dashboard.background` reads and names its state and log files.

The widgets (tabs) live in :mod:`matseg_nb.widgets.dashboard_app`; its ``TAB_REGISTRY`` says how to add a tab.
"""
