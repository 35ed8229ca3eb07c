"""Every metric of the five papers, one implementation each.

| metric                                   | function                         | papers                  |
|------------------------------------------|----------------------------------|-------------------------|
| nearest neighbours (KD-tree / cdist)     | nearest_neighbors                | (all point metrics)     |
| Acc (pred->GT), Comp (GT->pred)          | accuracy, completeness           | DynaTok                 |
| Chamfer-L1 / -L2, halves or sum          | chamfer_distance                 | COM4D, Native 4D VAE    |
| precision / recall / F-score at τ        | precision_recall, f_score        | Native 4D VAE, COM4D    |
| normal consistency                       | normal_consistency               | DynaTok                 |
| all of the above from one NN search      | pointcloud_metrics               |                         |
| volumetric IoU                           | volume_iou                       | COM4D                   |
| PSNR, SSIM                               | psnr, ssim                       | C4G, Native 4D VAE      |
| EPE3D, Acc strict/relaxed, outliers      | epe3d, scene_flow_metrics        | Any4D                   |
| APD, τ                                   | apd, inlier_ratio                | Any4D                   |
| AbsRel, δ < 1.25^k, scale alignment      | depth_metrics, align_depth       | Any4D                   |

Each module's docstring gives the formulas and whose convention each follows, and says
where a paper's definition is not public and which one we chose.
LPIPS (C4G) is not implemented: it needs pretrained weights, which fourdlib never
downloads; use the `lpips` package with weights you provide.
"""
from .depth import align_depth, depth_metrics
from .flow import apd, epe3d, inlier_ratio, scene_flow_metrics
from .image import psnr, ssim
from .pointcloud import (accuracy, chamfer_distance, completeness, f_score, nearest_neighbors,
                         normal_consistency, pointcloud_metrics, precision_recall)
from .volume import volume_iou

__all__ = ["accuracy", "align_depth", "apd", "chamfer_distance", "completeness", "depth_metrics",
           "epe3d", "f_score", "inlier_ratio", "nearest_neighbors", "normal_consistency",
           "pointcloud_metrics", "precision_recall", "psnr", "scene_flow_metrics", "ssim",
           "volume_iou"]
