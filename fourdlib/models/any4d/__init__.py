"""Any4D (arXiv 2512.10935): feed-forward metric 4D reconstruction: N views in, factored
per-pixel geometry and allocentric scene flow out in one pass.

config.py    Any4DConfig, one row per scale (CONFIGS, config_table); the paper's ablations
             are fields: `motion` (allocentric / egocentric / points after motion),
             `modalities` (images / geometry / doppler / all), `views`
model.py     the model read top to bottom: N views of rigid-object scenes with dense GT flow
             and Doppler (ViewDataset), input checks (check_batch, views_batch), normalised
             inputs (model_inputs), modality dropout, patch + modality encoders summed,
             alternating frame / global attention with a reference-view embedding and a
             scale token, DPT geometry and motion heads, pose and scale heads (Any4D),
             G = s T R D and M = s F (compose), scale-invariant losses (loss), predict
evaluate.py  EPE / APD / τ for scene flow and AbsRel / δ for depth on held-out clips,
             beside the zero-flow and depth-difference references (evaluate, summary) and
             the pairwise baseline (predict_pairwise: the same model on (reference, view i));
             a real pair: evaluate_deepdeform (DeepDeform's GT scene flow)
infer.py     the method on your RGB-D video (reconstruct; `fourd infer any4d`)
course.py    the course data set and named runs (course_data, RUNS, course_run, load_or_train), METHOD

Shared pieces it uses: fourdlib.layers (Block, frame_attention / global_attention,
DPTHead), fourdlib.geometry.flow (ego <-> allocentric flow, Doppler, rigid-object flow,
compose_points), fourdlib.metrics (flow, depth).
"""
from .config import CONFIGS, EXTRA_MODALITIES, MODALITY_SETS, MOTIONS, Any4DConfig, config_table
from .course import (COURSE_DATA, DATASETS, METHOD, RUNS, checkpoint_paths, course_data, course_run, load_model,
                     load_or_train, run_spec, save_model)
from .evaluate import (depth_difference_flow, evaluate, evaluate_deepdeform, flow_scores, gt_scale, predict_pairwise,
                       summary, zero_flow)
from .infer import reconstruct
from .model import (Any4D, ViewDataset, check_batch, compose, gt_factors, loss, make_dataset, modality_dropout,
                    model_inputs, predict, views_batch)

__all__ = ["Any4D", "Any4DConfig", "CONFIGS", "COURSE_DATA", "DATASETS", "EXTRA_MODALITIES", "METHOD", "MODALITY_SETS",
           "MOTIONS", "RUNS", "ViewDataset", "check_batch", "checkpoint_paths", "compose", "config_table",
           "course_data", "course_run", "depth_difference_flow", "evaluate", "evaluate_deepdeform", "flow_scores",
           "gt_factors", "gt_scale", "load_model", "load_or_train", "loss", "make_dataset", "modality_dropout",
           "model_inputs", "predict", "predict_pairwise", "reconstruct", "run_spec", "save_model", "summary",
           "views_batch", "zero_flow"]
