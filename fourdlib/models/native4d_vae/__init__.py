"""Native 4D VAE: a sparse-voxel 4D VAE with spatio-temporal window attention.

config.py    Native4DVAEConfig, one row per scale (CONFIGS, config_table)
model.py     the model read top to bottom: Plücker-embedded voxels, sparse stem, STD blocks,
             dense KL latent, STU blocks, early pruning, colour / occupancy heads; loss
             (BCE + Dice + colour MSE + rendering + KL), reconstruct; sequence_item / collate
"""
from .config import CONFIGS, LAMBDAS, Native4DVAEConfig, config_table
from .model import (STD, STU, Native4DVAE, bce_dice, child_sites, choose_lambda, collate, kl_divergence, loss,
                    occupancy_iou, occupied_at, pos_enc_4d, reconstruct, select_sites, sequence_item,
                    window_attention)

__all__ = ["CONFIGS", "LAMBDAS", "Native4DVAE", "Native4DVAEConfig", "STD", "STU", "bce_dice", "child_sites",
           "choose_lambda", "collate", "config_table", "kl_divergence", "loss", "occupancy_iou", "occupied_at",
           "pos_enc_4d", "reconstruct", "select_sites", "sequence_item", "window_attention"]
