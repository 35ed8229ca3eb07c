"""Native 4D VAE: a sparse-voxel 4D VAE with spatio-temporal window attention.

config.py    Native4DVAEConfig, one row per scale (CONFIGS, config_table); `block` picks the
             paper's 4D window attention ("attention") or its decoupled 3D + 1D conv ablation ("conv");
             `representation` the voxel VAE ("voxels") or the PointMapVAE baseline ("pointmap")
model.py     the model read top to bottom: Plücker-embedded voxels, sparse stem, STD blocks,
             dense KL latent, STU blocks, early pruning, colour / occupancy heads; loss
             (BCE + Dice + colour MSE + rendering + KL), reconstruct; sequence_item / collate,
             VoxelSequenceDataset / make_dataset; the table-1 baseline PointMapVAE (a 3D-conv
             video VAE on the depth video's pointmaps, latent of the same size; build_model)
evaluate.py  CD-L1, precision / recall at the paper's thresholds scaled to our voxel, IoU and
             novel-view PSNR on held-out sequences, beside the trivial codec of the latent's size
             and the voxelisation floor (import from fourdlib.models.native4d_vae.evaluate)
infer.py     encode / decode your own sequence to coloured voxels (autoencode; `fourd infer native4d_vae`)
course.py    the course data sets and named runs (course_data, RUNS, course_run, load_or_train), METHOD
"""
from .config import BLOCKS, CONFIGS, LAMBDAS, REPRESENTATIONS, Native4DVAEConfig, config_table
from .course import (COURSE_DATA, DATASETS, METHOD, RUNS, checkpoint_paths, course_data, course_run, load_model,
                     load_or_train, run_spec, save_model)
from .infer import autoencode
from .model import (STD, STU, ConvMix, Native4DVAE, PointMapVAE, VoxelSequenceDataset, as_batch, bce_dice,
                    build_model, child_sites, choose_lambda, collate, pointmap_frames, pointmap_loss, pointmap_voxels, kl_divergence, loss, make_dataset, occupancy_iou, occupied_at, pos_enc_4d,
                    reconstruct, select_sites, sequence_item, sequence_windows, voxel_item, window_attention,
                    window_item)

__all__ = ["BLOCKS", "CONFIGS", "COURSE_DATA", "ConvMix", "DATASETS", "LAMBDAS", "METHOD", "Native4DVAE",
           "Native4DVAEConfig", "PointMapVAE", "REPRESENTATIONS", "RUNS", "STD", "STU", "VoxelSequenceDataset",
           "as_batch", "autoencode", "bce_dice", "build_model", "checkpoint_paths", "child_sites", "choose_lambda", "collate", "config_table", "course_data",
           "course_run", "kl_divergence", "load_model", "load_or_train", "loss", "make_dataset", "occupancy_iou",
           "occupied_at", "pointmap_frames", "pointmap_loss", "pointmap_voxels", "pos_enc_4d", "reconstruct", "run_spec", "save_model", "select_sites", "sequence_item",
           "sequence_windows", "voxel_item", "window_attention", "window_item"]
