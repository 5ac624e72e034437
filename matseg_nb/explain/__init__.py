"""Expert explanations: counterfactual heatmaps restricted to an expert mask A, faithfulness,
annotation-mask I/O and the painter model.

>>> res = heatmap(model, image_chw, A, kernel="blur", window=16, stride=4)   # res.map (H, W)
>>> faith = faithfulness(model, image_chw, A, res.map, window=16)            # test vs 3 baselines
>>> print(faith.summary())                                                    # one sentence
>>> explain_image(run_dir, image_path, "A.png", "out/").summary()             # files + result
"""

from matseg_nb.explain.annotation import (
    boundary_annotation_from_gt,
    load_annotation,
    load_annotation_meta,
    save_annotation,
    save_boundary_annotation,
)
from matseg_nb.explain.faithfulness import BaselineTest, FaithfulnessResult, faithfulness
from matseg_nb.explain.figures import explanation_figure
from matseg_nb.explain.forward import ProbFn, TiledProbFn, prediction_fn
from matseg_nb.explain.grid import UPSAMPLERS, grid_locations, upsample
from matseg_nb.explain.heatmap import HeatmapResult, heatmap, heatmap_captum, heatmap_literal
from matseg_nb.explain.kernels import KERNELS, make_perturbation
from matseg_nb.explain.painter import PainterModel
from matseg_nb.explain.pipeline import (
    ExplanationResult,
    explain_image,
    explain_with_gt_boundary,
    load_model_input,
)

__all__ = [
    "KERNELS",
    "BaselineTest",
    "ExplanationResult",
    "FaithfulnessResult",
    "UPSAMPLERS",
    "HeatmapResult",
    "PainterModel",
    "ProbFn",
    "TiledProbFn",
    "boundary_annotation_from_gt",
    "explain_image",
    "explain_with_gt_boundary",
    "explanation_figure",
    "faithfulness",
    "grid_locations",
    "heatmap",
    "heatmap_captum",
    "heatmap_literal",
    "load_annotation",
    "load_annotation_meta",
    "load_model_input",
    "make_perturbation",
    "prediction_fn",
    "save_annotation",
    "save_boundary_annotation",
    "upsample",
]
