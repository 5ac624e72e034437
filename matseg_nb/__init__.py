"""matseg-nb: context-aware architecture selection, QC and explanations for materials segmentation."""

__version__ = "0.1.0"
