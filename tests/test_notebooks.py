"""Every notebook runs top to bottom with papermill at the smoke scale, and the numbers it
records make sense. A new notebook needs an entry in CHECKS: what its record must show."""
from pathlib import Path

import pytest

from fourdlib.course import run_one
from fourdlib.repro import load_records

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def check_4d_data(m):
    c = m["creature"]
    # One frame sees clearly less than the union of frames; the union sees most of it.
    assert c["visible_per_frame"] < 0.75 * c["visible_union"]
    assert c["visible_union"] > 0.7
    total = c["visible_per_frame"] + c["hidden_seen_elsewhere"] + c["never_seen"]
    assert abs(total - 1) < 1e-6  # the three regions partition the surface
    for kind in ("primitives", "scene", "compositional (mixed)"):
        assert 0 < m[kind]["visible_per_frame"] < m[kind]["visible_union"] <= 1


def check_metrics(m):
    cap = m["sphere_cap"]
    assert cap["completeness"] > 2 * cap["accuracy"]  # the missing cap only shows in completeness
    cd = m["chamfer"]
    assert cd["L1, sum of halves (COM4D)"] == pytest.approx(2 * cd["L1, mean of halves (OccNet, DynaTok)"])
    nc = m["normal_consistency"]
    assert nc["exact"] > 0.95 and nc["half flipped"] == pytest.approx(nc["exact"], abs=1e-6)
    assert nc["tilted"] < nc["exact"] - 0.05
    iou = m["iou_two_balls"]
    assert iou["voxel IoU"] == pytest.approx(iou["exact IoU"], abs=0.05)
    img = m["images"]
    assert 0 < img["blurred"]["SSIM"] < 1 and 0 < img["noisy"]["SSIM"] < 1
    flow = m["scene_flow"]
    assert flow["1 cm noise everywhere"]["epe3d"] < flow["30 cm error on 10 %"]["epe3d"]
    assert flow["1 cm noise everywhere"]["acc_strict"] > flow["30 cm error on 10 %"]["acc_strict"]
    depth = m["depth"]
    assert depth["median-aligned"]["abs_rel"] < depth["metric (no alignment)"]["abs_rel"]


def check_dynatok_tokenization(m):
    assert m["fps_matches_library"] == 1.0  # FPS from scratch picks the library's anchors
    assert m["min_gap_fps"] > m["min_gap_random"]  # FPS spreads its picks
    assert m["fit_loss_fourier"] < m["fit_loss_raw"]  # Fourier features fit the sharp pattern better
    assert m["max_change_shuffled"] < 1e-4 and m["max_change_doubled"] < 1e-4
    assert m["tokenizer_max_diff_library"] < 1e-4  # the tokenizer built from scratch is the library's


def check_dynatok_latents(m):
    # 1. intra-frame = block-diagonal mask = attention per frame; cross-frame reaches other frames
    assert m["intra_mask_vs_batched_frames"] < 1e-5
    assert m["intra_weight_outside_frame"] == 0.0 and m["cross_weight_outside_frame"] > 0.1
    # the per-frame ablation carries nothing between frames; the temporal model does
    assert m["perframe_max_change_other_frames"] < 1e-6 < m["perframe_max_change_altered_frame"]
    assert m["temporal_max_change_other_frames"] > 1e-3
    # 2. RoPE from scratch = library; translation-invariant scores, unlike an absolute embedding
    assert m["rope_max_diff_library"] < 1e-5
    assert m["rope_max_change_translated"] < 1e-4 * max(1.0, m["rope_score_scale"])
    assert m["abs_max_change_translated"] > 100 * m["rope_max_change_translated"]
    # 3. residual latents: identities of the construction, untrained and trained
    assert m["max_abs_H1"] == 0.0 and m["trained_max_abs_H1"] == 0.0
    assert m["max_abs_Z_minus_G_plus_H"] == 0.0
    assert m["frame1_decode_Z_vs_G"] < 1e-5  # Z_1 = G, same noise -> same points
    # slots: no correspondence between frames' FPS anchors; what slot_embed / ref_embed change
    assert m["anchor_gap_same_slot"] > (m["anchor_gap_nearest"] + m["anchor_gap_any"]) / 2
    assert m["noslot_shuffle_follows_tokens"] < 1e-4 and m["noslot_shuffle_other_frames"] < 1e-4
    assert m["noslot_shuffle_changes_Zs"] > 1e3 * m["noslot_shuffle_follows_tokens"]
    assert m["slot_shuffle_not_just_permuted"] > 100 * m["noslot_shuffle_follows_tokens"]
    assert m["noref_copies_max_H_minus_G"] < 1e-4 < m["ref_copies_max_H_minus_G"]
    assert m["decoder_context_norm_free"] == 1.0 and m["layernorm_change_doubled_Z"] < 1e-3
    # 4. and 5. trained, static and creatures: finite positive distances and ratios, trained and untrained
    static, creatures = m["static"], m["creatures"]
    for part in (static, creatures):
        for name in ("decode(Z_s)", "decode(G)", "partial input"):
            for metric in ("completeness", "accuracy"):
                assert 0 < part["frames_after_1"][name][metric] < float("inf")
        assert 0 < part["h_rel_trained"] < float("inf") and 0 < part["h_rel_untrained"] < float("inf")
        assert part["train_steps"] >= 1
    assert -1 <= static["h_rel_angle_correlation"] <= 1
    assert 0 < static["max_view_angle_deg"] <= 180
    for key in ("h_rel_displacement_correlation", "h_rel_untrained_displacement_correlation",
                "decode_G_minus_Z_completeness_displacement_correlation"):
        assert -1 <= creatures[key] <= 1
    assert creatures["max_displacement_m"] > 0  # the creatures move
    assert creatures["frame1_decode_Z_vs_G"] < 1e-5


def check_dynatok_flow_matching(m):
    assert m["toy_loss_matches_library"] == 1.0  # the four-line loss is the library's
    assert m["exact_field_max_miss"] < 1e-3  # the exact field carries every sample onto a data point
    assert m["toy_radius_error"] < m["toy_radius_error_prior"]  # the trained toy flow moves noise to the ring
    for key in ("DynaTok", "DynaTok (current)", "per-frame", "per-frame (current)"):
        r = m[key]
        assert all(r[c] > 0 for c in ("pred_acc", "pred_comp", "pred_comp_visible", "pred_acc_visible"))
        assert 0 < r["pred_nc"] <= 1
    assert m["input"]["input_acc_visible"] > 0
    assert set(m["ode_accuracy"]) >= {"euler_1", "heun_1", "euler_4", "heun_4"}
    n = m["sequences_evaluated"]
    assert n >= 1 and all(0 <= k <= n for d in ("sequences_dynatok_beats_perframe", "sequences_all_beats_current")
                          for k in m[d].values())


def check_dynatok_tables(m):
    def check_row(r):  # one paper-table row: its three metrics, in range
        assert set(r) == {"Acc", "Comp", "NC"}
        assert r["Acc"] > 0 and r["Comp"] > 0 and 0 < r["NC"] <= 1

    if "object_level" not in m:  # a record of one table row (record(..., table=, variant=))
        if "Acc" in m:  # ablation: one unnamed setting
            check_row(m)
        else:
            assert m and set(m) <= {"Unseen Motion", "Unseen Indiv.", "Foreground", "FG+BG"}
            for r in m.values():
                check_row(r)
        return
    for rows in m["object_level"].values():
        assert set(rows) == {"Unseen Motion", "Unseen Indiv."}  # both DT4D-like splits exist, even at smoke
        for r in rows.values():
            check_row(r)
    assert set(m["scene_level"]) == {"Foreground", "FG+BG"}
    for r in m["scene_level"].values():
        check_row(r)
    ab = m["ablation"]
    for r in ab.values():
        check_row(r)
    # the ablation reuses the object-level evaluations of its split: exactly the same numbers
    assert ab["Full"] == m["object_level"]["DynaTok"]["Unseen Indiv."]
    assert ab["Per-frame Only"] == m["object_level"]["Per-frame ablation"]["Unseen Indiv."]
    # token rows: distinct M >= 1; the row with the config's M is the Full model itself
    Ms = list(m["tokens"].values())
    assert len(set(Ms)) == len(Ms) and all(M >= 1 for M in Ms) and m["num_tokens"] in Ms
    assert set(m["tokens"]) <= set(ab)
    for label, M in m["tokens"].items():
        if M == m["num_tokens"]:
            assert ab[label] == ab["Full"]
    # the three visibility regions partition the GT: shares sum to 1, completeness recombines exactly
    assert sum(m["region_share"].values()) == pytest.approx(1, abs=1e-9)
    assert m["comp_partition_error"] < 1e-9
    # a frame's input covers what that frame saw far better than what only other frames saw
    ref = m["regions"]["input (partial cloud of the frame)"]
    assert ref["visible"] < ref["hidden_seen_elsewhere"]
    assert m["train_steps"] >= 1 and all(n >= 1 for n in m["frames_evaluated"].values())


def check_c4g_gaussian_splatting(m):
    # 1. one Gaussian from scratch: the library's covariances; J is the projection's derivative
    assert max(m["cov3d_max_diff_library"], m["cov2d_max_diff_library"], m["jacobian_max_diff_autograd"]) < 1e-9
    # the 0.3 px^2 low-pass term: a sub-pixel Gaussian slid across a pixel flickers without it, not with it
    assert m["lowpass_variation_eps0"] > 0.9 and m["lowpass_variation_eps03"] < 0.1
    # the footprint's area grows as 1/z^2 as the Gaussian comes closer; off the axis a ball stretches
    far, mid, near = m["footprint_area_px2"].values()  # z = 4, 2, 1 m
    assert far < mid < near and near / mid == pytest.approx(4, rel=0.03) and mid / far == pytest.approx(4, rel=0.03)
    centre, half, edge = m["footprint_stretch_sideways"].values()
    assert centre == pytest.approx(1) and 1.05 < half < edge
    # EWA vs exactly projected samples: right in a narrow view, the tail escapes it in a wide one
    shares = m["ewa_outside_share"]
    gauss = shares["2D Gaussian (exact for a linear map)"]["3 sigma"]
    narrow = next(v for k, v in shares.items() if k.startswith("narrow"))["3 sigma"]
    wide = next(v for k, v in shares.items() if k.startswith("wide"))["3 sigma"]
    assert narrow == pytest.approx(gauss, abs=0.002) and wide > 2 * gauss
    # 2. the renderer written from scratch gives render_gaussians' and render_reference's image
    assert m["scratch_vs_library_max_diff"] < 1e-5 and m["scratch_vs_reference_max_diff"] < 1e-5
    # 3. gradient descent through the renderer fits the image, and beats one flat colour
    fit = m["fit"]
    assert fit["steps"] >= 1 and fit["psnr_end"] > fit["psnr_start"] + 5
    assert fit["psnr_end"] > fit["psnr_mean_colour"] + 3
    # 4. tiles: fewer pixel x Gaussian pairs than every Gaussian at every pixel, the same image
    tiles = m["tiles"]
    assert 0 < tiles["pairs_tiled"] < tiles["pairs_every_gaussian_every_pixel"]
    assert tiles["max_image_change_tile_8_vs_16"] < 1e-5


def check_c4g_query_gaussians(m):
    assert m["gaussians_c4g"] < m["gaussians_per_pixel"]                 # the compact budget
    # the target time moves positions only, deterministically
    assert m["max_change_non_position_over_time"] == 0.0 and m["decode_repeat_max_diff"] == 0.0
    assert m["max_position_change_over_time"] > 0
    assert all(5 < v < 60 for v in m["novel_frame_psnr"].values())     # finite, not black images
    assert 0 <= m["per_pixel_duplicated_fraction"] <= 1
    gaps = m["gap_psnr"]
    near, floor = gaps["nearest input frame (copied)"], gaps["floor: the target's own RGB-D pixels splatted"]
    assert all(floor[g] > near[g] for g in near)                       # the GT's own pixels beat a copied frame


def check_c4g_tables(m):
    views = m["novel_views"]
    assert views["C4G (query Gaussians)"]["Gaussians"] < views["per-pixel Gaussians"]["Gaussians"]
    floor = views["floor: the target's own RGB-D pixels splatted"]["PSNR"]
    assert floor > views["nearest input frame (copied)"]["PSNR"]
    assert len(m["gap_psnr"]["C4G (query Gaussians)"]) >= 2           # the long clips reach more than one gap
    tr = m["tracking"]
    # reprojection with the known cameras is exact on the static scene: GT tracks and cameras agree
    assert tr["static scene: static"]["delta_avg"] > 0.99
    assert tr["static scene: zero"]["delta_avg"] < tr["static scene: static"]["delta_avg"]
    assert all(0 <= row["delta_avg"] <= 1 for row in tr.values())


def check_native4d_voxels(m):
    # from scratch = library: back-projection, the points voxeliser (cells and mean colours), the depth-edge rule
    assert m["backproject_max_diff_library"] < 1e-5
    assert m["scratch_voxels_match_library"] == 1.0 and m["scratch_colour_max_diff_library"] < 1e-6
    assert m["edge_rule_matches_library"] == 1.0 and 0 < m["faces"]["cut"] < m["faces"]["all"]
    p = m["paths"]
    mesh, nocut, naive = p["mesh (paper)"], p["mesh, no edge cut"], p["points (naive)"]
    assert all(0 < v["coverage_seen_gt"] <= 1 for v in p.values())
    # the naive path leaves holes: less of the GT surface the camera saw, fewer voxels, mesh-path cells left empty
    assert naive["coverage_seen_gt"] < mesh["coverage_seen_gt"]
    assert naive["voxels_per_frame"] < mesh["voxels_per_frame"]
    assert mesh["mesh_cells_empty"] == 0 and naive["mesh_cells_empty"] > 0.1
    # the edge cut removes the curtains: no mesh-path voxel off the GT surface, the uncut mesh has some
    assert mesh["stray_voxels"] == 0 < nocut["stray_voxels"]
    # finer voxels: the naive path's coverage collapses and ends below the mesh path's
    cov = m["sweep_coverage"]
    res = sorted(cov["points (naive)"], key=int)
    assert cov["points (naive)"][res[-1]] < 0.5 * cov["points (naive)"][res[0]]
    assert cov["mesh (paper)"][res[-1]] > cov["points (naive)"][res[-1]]
    lay = m["layout"]  # the sparse tensor: offsets end at P, a few percent of the grid, far less memory
    assert lay["last_offset"] == lay["sites"] and 0 < lay["occupancy"] < 0.05
    assert lay["sparse_bytes"] < lay["dense_bytes"]


def check_native4d_sparse_conv(m):
    # from scratch = fourdlib's torch path = dense conv3d / conv_transpose3d at the sites, outputs and gradients
    assert m["neighbour_map_matches_library"] == 1.0
    for key in ("submanifold_max_diff", "down_max_diff", "up_max_diff"):
        assert len(m[key]) == 2, key  # compared with the library and with the dense op
        assert all(v < 1e-5 for d in m[key].values() for v in d.values()), key
    assert 1 < m["mean_active_neighbours"] < 26
    assert m["dense_nonzero_cells_over_sites"] > 1.5  # a dense conv dilates the surface; submanifold does not
    assert 1 / 8 < m["coarse_over_fine_sites"] < 1 / 2  # a surface halves like an area, not like a volume
    assert m["children_over_fine_sites"] > 1  # all 8 children of the coarse sites: more than the true sites
    t = m["timing"]
    assert t["float32_max_diff_dense"] < 1e-4
    assert t["fourdlib: conv, cached map"] < t["dense conv3d, full grid"]  # ~1 % occupancy: sparse wins
    assert 0 < m["occupancy"] < 0.05
    mem = m["memory_MB_per_frame_at_full_resolution"]
    assert mem["sparse, extended as R^2"] < mem["dense grid"] / 100


def check_com4d_attention_parsing(m):
    # the who-attends-to-whom rule written from scratch is the library's role_masks; mixing's
    # groups are one frame or one object; the DiT's embeddings equal the ones built by hand
    assert m["masks_match_library"] == 1.0 and m["mixing_groups_single_frame_or_object"] == 1.0
    assert m["embedding_max_diff_library"] < 1e-5
    p = m["perturbation"]  # outputs changed (of objects x frames) when one latent is perturbed
    assert p["static object, temporal only"] == 1 < p["dynamic object, temporal only"]
    assert p["dynamic object, spatial only"] == p["static object, spatial only"] > 1
    assert p["dynamic object, both (mixing)"] >= p["dynamic object, spatial only"]
    sch = m["schedule"]  # attention parsing: both roles trained, never on a mixed sample
    assert sch["spatial_steps"] >= 1 and sch["temporal_steps"] >= 1 and sch["steps_with_objects_and_frames"] == 0
    assert m["dataset_refuses_mixed"] == 1.0


def check_any4d_factored_flow(m):
    # by hand = fourdlib.geometry.flow: ego <-> allocentric, rigid-object flow, Doppler (toy and data set)
    assert max(m["ego_vs_library_max_diff"], m["allo_round_trip_max_diff"], m["rigid_flow_vs_hand_max_diff"]) < 1e-9
    assert m["doppler_vs_library_max_diff"] < 1e-6 and m["doppler_dataset_max_diff"] < 1e-3
    # a moving camera: static points have zero allocentric but non-zero egocentric flow
    assert m["static_allocentric_max"] == 0.0 and m["static_egocentric_mean"] > 0.1
    assert m["scene_static_allocentric_max"] < 1e-4 < m["scene_static_egocentric_mean"]
    # G = s T R D: exact on the known case, = back-projected depth; normalised factors scale-free
    assert m["composition_exact"] == 1.0 and m["compose_vs_unproject_max_diff"] < 1e-4
    assert m["flow_recomposed_max_diff"] < 1e-5 and m["normalised_factors_spread_over_scales"] < 1e-5
    assert m["normalised_mean_distance"] == pytest.approx(1.0, abs=1e-4)


def check_any4d_alternating_attention(m):
    # frame-wise = masked = per view; a change reaches other views only through a global layer
    assert m["masked_vs_per_view_max_diff"] < 1e-5 and m["weight_outside_own_view"] == 0.0
    assert max(m["frame_attention_vs_loop_max_diff"], m["global_attention_vs_flat_max_diff"]) < 1e-5
    assert m["view0_change_after_frame_layer"] == 0.0 < m["view0_change_after_global_layer"]
    assert m["dpt_output_channels"] == 5  # rays 3 + depth 1 + confidence 1
    assert m["dropout_max_abs_diff_paper"] < 0.02
    assert m["loss_terms_max_rel_change_x3"] < 1e-4 and m["scale_term_change_x3"] == pytest.approx(1.0986, abs=1e-3)
    # the overfit ran and moved the flow towards the GT (smoke: 30 steps, mechanics only)
    assert m["overfit_steps"] >= 1 and m["Any4D: epe"] < m["untrained: epe"]
    assert m["zero flow: epe"] >= 0 and m["depth difference: epe"] >= 0
    assert m["speedup_one_pass_vs_pairwise_N8"] > 0


def check_com4d_diffusion_forcing_and_mixing(m):
    # diffusion forcing: clean latents held bit for bit; training mixes clean history and noisy latents
    assert m["clean_latents_max_change"] == 0.0 and 0 < m["training_clean_share"] < 1
    w = m["window"]  # the sliding window: never more frames than trained, each frame generated once
    assert w["max_frames_per_call"] == w["train_frames"] and w["frames_generated_once"] == 1.0
    assert w["windows"] == 1 + -(-(w["frames"] - w["train_frames"]) // (w["train_frames"] - w["history_frames"]))
    o = m["overfit"]
    assert set(o) == {"attention mixing", "stitched", "frame by frame", "VAE floor (GT encoded)",
                      "noise latents (untrained sampler)"}
    for row in o.values():
        assert row["CD"] > 0 and 0 <= row["F-score@0.1"] <= 1 and 0 <= row["IoU"] <= 1
        assert 0 <= row["penetration IoU"] <= 1
    assert o["VAE floor (GT encoded)"]["CD"] < o["noise latents (untrained sampler)"]["CD"]
    assert m["overfit_steps"]["vae"] >= 1 and m["overfit_steps"]["dit"] >= 1


def check_native4d_tables(m):
    o = m["overfit"]
    assert o["steps"] >= 1 and 0 <= o["iou"] <= 1 and o["last_loss"] == o["last_loss"]
    for split in ("unseen motion", "unseen individual"):
        t = m[split]
        floor = t["floor: GT voxels at the same resolution"]
        codec = t["trivial codec (latent-grid voxels, every λ-th frame repeated)"]
        assert floor["IoU"] == 1.0 and floor["empty frames"] == 0.0
        assert codec["voxels"] > floor["voxels"]                         # the codec's coarse cells are a thick crust
        assert codec["Pre@0.0005"] < floor["Pre@0.0005"] + 1e-9          # ... so its tight precision is below the floor's
        assert {"Native 4D VAE (ST window attention)", "w/o ST-Attn (3D + 1D sparse conv)", "w/o render loss",
                "PointMapVAE (3D-conv video VAE on pointmaps)"} <= set(t)
        naive = t["PointMapVAE floor: GT pointmap voxelised (one point per pixel)"]
        assert 0 < naive["voxels"] and naive["IoU"] < 1                  # one point per pixel: not the mesh's voxels
        for row in t.values():
            assert all(0 <= row[k] <= 1 for k in ("Pre@0.005", "Recall@0.005", "IoU") if k in row)


def check_com4d_tables(m):
    floor, mix = "floor: VAE reconstruction of GT", "COM4D (attention mixing)"
    t = m["mixed"]
    assert set(t) == {mix, "stitched (no mixing)", "static-only, frame by frame", floor}
    for row in t.values():
        assert row["CD"] > 0 and 0 <= row["F-score@0.1"] <= 1 and 0 <= row["penetration IoU"] <= 1
    assert t[floor]["empty"] == 0.0                  # the GT's own latents always decode to a surface
    kinds = [k for k in ("test, single animations", "test, static layouts") if k in m]   # smoke may lack one
    assert kinds
    for kind in kinds:
        assert set(m[kind]) == {mix, floor} and m[kind][floor]["CD"] > 0
    if "test, single animations" in m:
        assert set(m["ablation"]) == {"COM4D", "w/o static/dynamic embeddings", "w/o diffusion forcing"}
    for run, d in m["drift"].items():                # scene CD of the frames in / past the training window
        assert d["early"] > 0 and d["late"] > 0, run


def check_any4d_tables(m):
    t5 = m["table5"]
    assert {"Any4D (allocentric flow)", "egocentric flow", "points after motion", "zero flow",
            "depth difference"} <= set(t5)
    for row in t5.values():
        assert row["epe"] >= 0 and 0 <= row["apd"] <= 1 and 0 <= row["tau"] <= 1
    assert t5["zero flow"]["epe"] < t5["depth difference"]["epe"]      # zero is exact on static pixels
    t4 = m["table4"]
    assert set(t4) == {"images only", "images + geometry", "images + Doppler", "all modalities"}
    assert all(row["abs_rel"] > 0 for row in t4.values())
    assert min(m["frames_per_s"].values()) > 0


def check_native4d_windows(m):
    # 4D windows from scratch = the library's labels and packed offsets (STD and STU)
    assert m["window_labels_match_library"] == 1.0 and m["window_offsets_match_library"] == 1.0
    assert m["stu_window_labels_match_library"] == 1.0
    # from scratch = library: 4D encoding, block inputs, masked attention, merge, the whole STD block, expansion
    for key in ("pe_max_diff_library", "coarse_tokens_max_diff_library", "keys_max_diff_library",
                "masked_attention_max_diff", "merge_max_diff_library", "expand_max_diff_library",
                "copies_minus_pe_max_diff", "base_max_diff_library", "std_from_scratch_max_diff"):
        assert m[key] < 1e-5, key
    assert m["weight_outside_window"] == 0.0  # no query attends outside its window
    # sub-frames of a group differ only in the time channels of the 4D encoding
    assert m["subframe_diff_xyz_channels"] == 0.0
    assert m["lam"] == 1 or m["subframe_diff_t_channels"] > 0
    assert m["stu_out_sites_per_token"] == 8 * m["lam"]  # all 8 children of every copy
    # windows: packed, variable length, cheaper than global attention
    assert m["windows"] >= 1 and m["keys_per_window_max"] >= m["keys_per_window_mean"] > 0
    assert m["padding_over_packed_keys"] >= 1 and 0 < m["window_cost_over_global"] <= 1
    # tokens: the down-conv and the merge over lambda frames shrink the set, within the union bounds
    assert m["coarse_tokens"] < m["fine_tokens"] <= m["voxels"]
    assert m["coarse_tokens"] / m["lam"] <= m["merged_tokens"] <= m["coarse_tokens"]
    assert 0 <= m["merged_seen_in_all_frames"] <= 1
    # lambda per batch: the largest of 1, 2, 4 dividing every sequence's frame count
    lam = m["lambda"]
    assert lam["8"] == 4 and lam["6"] == 2 and lam["7"] == 1 and lam["8 + 6"] == 2 and lam["8 + 5"] == 1
    for counts, value in lam.items():
        assert all(int(n) % value == 0 for n in counts.split(" + ")), counts
    for mix, row in m["mixed_batches"].items():  # different lengths in one batch: groups = frames / lambda
        frames = sum(int(n) for n in mix.split(" + "))
        assert frames % row["lambda"] == 0 and row["latent_frames"] == frames // row["lambda"], mix
        assert row["loss"] == row["loss"] and row["loss"] > 0, mix


def check_native4d_rasteriser(m):
    # from scratch (a ray walked cell by cell through the grid) = render_voxels: image, depth, alpha
    for key in ("toy_image_max_diff_library", "toy_depth_max_diff_library", "toy_alpha_max_diff_library"):
        assert m[key] < 1e-5, key
    assert m["toy_voxels"] >= 1 and m["toy_pixels_hit"] > 0
    # gradients: gradcheck in float64; nothing reaches a voxel behind an opaque one
    assert m["gradcheck_passed"] == 1.0 and m["grad_behind_opaque"] == 0.0
    # a real frame: GT voxels (occupancy 1) render opaque, from its camera and orbited 90 degrees
    assert m["frame_voxels"] > 0 and m["gt_alpha_binary"] == 1.0
    assert 0 < m["coverage_own_camera"] < 1 and 0 < m["coverage_orbited"] < 1
    # the VAE's render_loss is the MSE of the two renders from the frame's camera
    assert m["render_loss_max_diff"] < 1e-6
    # fitting colours by rendering: the loss falls and a view never rendered in the fit improves clearly
    assert m["colour_loss_last"] < 0.5 * m["colour_loss_first"]
    assert m["colour_psnr_after"] > m["colour_psnr_before"] + 3
    assert 0 < m["colour_voxels_reached"] <= 1 and m["colour_error_reached"] < 0.1
    # the same for occupancy (0.5 at the start): the seen voxels turn opaque
    assert m["occupancy_loss_last"] < m["occupancy_loss_first"]
    assert m["occupancy_psnr_after"] > m["occupancy_psnr_before"]
    assert 0.5 < m["occupancy_mean_reached"] <= 1
    # timings: every (scene, image size, tile size) measured
    assert len(m["render_ms"]) == 12
    for case, row in m["render_ms"].items():
        assert 0 < row["forward_ms"] and 0 < row["forward_backward_ms"], case


CHECKS = {"00_4d_data": check_4d_data, "00_metrics": check_metrics,
          "01_dynatok_tokenization": check_dynatok_tokenization,
          "02_dynatok_latents": check_dynatok_latents,
          "03_dynatok_flow_matching": check_dynatok_flow_matching,
          "04_dynatok_tables": check_dynatok_tables,
          "05_c4g_gaussian_splatting": check_c4g_gaussian_splatting,
          "06_c4g_query_gaussians": check_c4g_query_gaussians,
          "07_c4g_tables": check_c4g_tables,
          "08_native4d_voxels": check_native4d_voxels,
          "09_native4d_sparse_conv": check_native4d_sparse_conv,
          "10_native4d_windows": check_native4d_windows,
          "11_native4d_rasteriser": check_native4d_rasteriser,
          "12_native4d_tables": check_native4d_tables,
          "13_any4d_factored_flow": check_any4d_factored_flow,
          "14_any4d_alternating_attention": check_any4d_alternating_attention,
          "15_any4d_tables": check_any4d_tables,
          "16_com4d_attention_parsing": check_com4d_attention_parsing,
          "17_com4d_diffusion_forcing_and_mixing": check_com4d_diffusion_forcing_and_mixing,
          "18_com4d_tables": check_com4d_tables}


@pytest.fixture(scope="module", autouse=True)
def course_cache(tmp_path_factory):
    """Data and trained runs of this test session only (never the user's ~/.cache/fourdlib);
    shared by the notebooks, as in a course run, so a run one notebook trains the next loads."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOURD_CACHE", str(tmp_path_factory.mktemp("fourd_cache")))
        yield


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_smoke_scale(notebook, tmp_path):
    assert notebook.stem in CHECKS, f"add a record check for {notebook.name} to CHECKS"
    result = run_one(notebook, {"scale": "smoke"}, out=tmp_path, progress=False)
    assert result.ok, [(r.source.name, r.status, r.error) for r in result.runs]
    records = load_records(tmp_path)
    mine = records[records.notebook == notebook.stem]
    assert len(mine) >= 1, f"{notebook.name} wrote no record"
    assert (mine.scale == "smoke").all()
    import json
    for path in mine.path:
        CHECKS[notebook.stem](json.loads(Path(path).read_text())["metrics"])
    assert (tmp_path / f"{notebook.stem}.html").exists()  # a page a person can open
