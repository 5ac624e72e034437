"""Export a trained run as a standalone model file (ONNX, TorchScript) with its preprocessing sidecar.

:func:`export_run` is the entry point; :data:`FORMATS` maps a format name to its writer. The percentile
normalization (``data.normalize_image``) is not in the graph: ``export.json`` states it."""

from matseg_nb.export.run_export import FORMATS, export_run

__all__ = ["FORMATS", "export_run"]
