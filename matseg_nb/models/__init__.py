"""smp models: registry and ``build_model``, encoder weights, tiled inference, run-folder loading."""

from matseg_nb.models.build import build_model, n_params, pad_multiple
from matseg_nb.models.io import load_run_model, save_model
from matseg_nb.models.registry import DECODERS, PAPER_DECODERS, PAPER_ENCODERS, check_encoder, decoder_class
from matseg_nb.models.tiling import pad_to_multiple, predict_tiled
from matseg_nb.models.weights import hub_cache_dir, imagenet_source, load_encoder_file

__all__ = [
    "DECODERS",
    "PAPER_DECODERS",
    "PAPER_ENCODERS",
    "build_model",
    "check_encoder",
    "decoder_class",
    "hub_cache_dir",
    "imagenet_source",
    "load_encoder_file",
    "load_run_model",
    "n_params",
    "pad_multiple",
    "pad_to_multiple",
    "predict_tiled",
    "save_model",
]
