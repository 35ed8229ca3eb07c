"""Tests for fourdlib.layers: attention backends agree with the math reference, variable-length
paths agree with each other and with per-sequence calls, RoPE sees only relative
positions, embeddings follow their formulas, modules are bf16-safe and trainable."""
import importlib.util
import math

import pytest
import torch

from fourdlib.layers import (
    Block,
    CrossAttentionBlock,
    adaln_zero,
    frame_attention,
    global_attention,
    FourierFeatures,
    MultiHeadAttention,
    RotaryEmbedding1D,
    RotaryEmbedding3D,
    TimestepEmbedder,
    apply_rotary,
    attention,
    cu_seqlens_from_lengths,
    timestep_embedding,
    varlen_attention,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=gen(seed)).to(dtype)


# ----------------------------------------------------------------------------------------
# dense attention
# ----------------------------------------------------------------------------------------


def test_math_attention_hand_case():
    # one query, two keys with scores 0 and ln 3 -> weights 1/4, 3/4 -> 0.25*4 + 0.75*8 = 7
    q = torch.tensor([1.0]).view(1, 1, 1, 1)
    k = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 2, 1)
    v = torch.tensor([4.0, 8.0]).view(1, 1, 2, 1)
    for backend in ("math", "sdpa"):
        assert attention(q, k, v, backend=backend).item() == pytest.approx(7.0, rel=1e-6)
    # masking the second key leaves only the first value
    mask = torch.tensor([True, False]).view(1, 1, 1, 2)
    assert attention(q, k, v, mask=mask, backend="math").item() == pytest.approx(4.0)


def test_sdpa_matches_math_self_and_cross():
    B, H, d = 2, 3, 16
    q = randn(B, H, 7, d, seed=1)
    for Lk, dv in ((7, d), (11, 8)):  # self-attention shapes, cross-attention with other length and value dim
        k, v = randn(B, H, Lk, d, seed=2), randn(B, H, Lk, dv, seed=3)
        ref = attention(q, k, v, backend="math")
        assert ref.shape == (B, H, 7, dv)
        torch.testing.assert_close(attention(q, k, v, backend="sdpa"), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attention(q, k, v), ref, atol=1e-5, rtol=1e-5)


def test_sdpa_matches_math_with_masks():
    B, H, Lq, Lk, d = 2, 2, 5, 9, 8
    q, k, v = randn(B, H, Lq, d, seed=1), randn(B, H, Lk, d, seed=2), randn(B, H, Lk, d, seed=3)
    # key padding (B, 1, 1, Lk): sample 0 sees 4 keys, sample 1 all
    valid = torch.arange(Lk)[None] < torch.tensor([[4], [Lk]])
    dense = torch.rand(B, H, Lq, Lk, generator=gen(4)) > 0.5
    dense[..., 0] = True  # every query keeps at least one key
    additive = randn(B, 1, Lq, Lk, seed=5)
    for mask in (valid[:, None, None, :], dense, additive):
        ref = attention(q, k, v, mask=mask, backend="math")
        torch.testing.assert_close(attention(q, k, v, mask=mask, backend="sdpa"), ref, atol=1e-5, rtol=1e-5)
    # masked keys really are ignored: changing their values changes nothing
    v2 = v.clone()
    v2[0, :, 4:] = 100.0
    m = valid[:, None, None, :]
    torch.testing.assert_close(attention(q, k, v2, mask=m)[0], attention(q, k, v, mask=m)[0])


def test_attention_bf16_runs_in_input_dtype():
    q, k, v = (randn(2, 4, 64, 32, seed=s, dtype=torch.bfloat16) for s in (1, 2, 3))
    for backend in ("sdpa", "math"):
        out = attention(q, k, v, backend=backend)
        assert out.dtype == torch.bfloat16
        ref = attention(q.float(), k.float(), v.float(), backend="math")
        assert (out.float() - ref).abs().max() < 3e-2


def test_attention_errors():
    q = randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match=r"\(B, H, L, d\)"):
        attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="batch and head"):
        attention(q, randn(1, 3, 4, 8), randn(1, 3, 4, 8))
    with pytest.raises(ValueError, match="head dims differ"):
        attention(q, randn(1, 2, 4, 4), randn(1, 2, 4, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        attention(q, q, q, mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no key to attend"):
        attention(q, q, q, mask=torch.zeros(1, 1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention(q, q, q, backend="flash")
    with pytest.raises(ValueError, match="share a dtype"):
        attention(q, q.double(), q)
    with pytest.raises(RuntimeError, match="no CPU kernels"):
        attention(q, q, q, backend="xformers")


# ----------------------------------------------------------------------------------------
# variable-length attention
# ----------------------------------------------------------------------------------------


def per_sequence_reference(q, k, v, lq, lk):
    """Independent reference: split the packed tensors, math attention on each sequence."""
    outs, a, c = [], 0, 0
    for nq, nk in zip(lq, lk):
        if nq:
            qi, ki, vi = (t.transpose(0, 1)[None] for t in (q[a:a + nq], k[c:c + nk], v[c:c + nk]))
            outs.append(attention(qi, ki, vi, backend="math")[0].transpose(0, 1))
        a, c = a + nq, c + nk
    return torch.cat(outs)


@pytest.mark.parametrize("empty", [False, True])
def test_varlen_paths_agree_with_per_sequence_calls(empty):
    lq = [5, 0, 17, 1, 9] if empty else [5, 2, 17, 1, 9]
    lk = [7, 3, 12, 1, 4]  # cross-attention: other lengths for the keys
    H, d = 3, 16
    q, k, v = randn(sum(lq), H, d, seed=1), randn(sum(lk), H, d, seed=2), randn(sum(lk), H, d, seed=3)
    cu_q, cu_k = cu_seqlens_from_lengths(torch.tensor(lq)), cu_seqlens_from_lengths(torch.tensor(lk))
    ref = per_sequence_reference(q, k, v, lq, lk)
    backends = ["auto", "loop", "masked"] + ([] if empty else ["nested"])
    for backend in backends:
        out = varlen_attention(q, k, v, cu_q, cu_k, backend=backend)
        assert out.shape == (sum(lq), H, d)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5, msg=f"backend {backend}")
    # self-attention: cu_seqlens_k defaults to cu_seqlens_q
    kq, vq = randn(sum(lq), H, d, seed=4), randn(sum(lq), H, d, seed=5)
    torch.testing.assert_close(
        varlen_attention(q, kq, vq, cu_q), per_sequence_reference(q, kq, vq, lq, lq), atol=1e-5, rtol=1e-5
    )


def test_varlen_gradients_agree():
    lens = [6, 11, 3]
    cu = cu_seqlens_from_lengths(torch.tensor(lens))
    grads = {}
    for backend in ("loop", "masked"):
        q, k, v = (randn(sum(lens), 2, 8, seed=s).requires_grad_() for s in (1, 2, 3))
        (varlen_attention(q, k, v, cu, backend=backend) * randn(sum(lens), 2, 8, seed=9)).sum().backward()
        grads[backend] = (q.grad, k.grad, v.grad)
    for g_loop, g_mask in zip(grads["loop"], grads["masked"]):
        torch.testing.assert_close(g_loop, g_mask, atol=1e-5, rtol=1e-5)


def test_varlen_errors():
    q = randn(10, 2, 8)
    with pytest.raises(ValueError, match="must start at 0"):
        varlen_attention(q, q, q, torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="non-decreasing"):
        varlen_attention(q, q, q, torch.tensor([0, 6, 4, 10]))
    with pytest.raises(ValueError, match="ends at 9 but the packed tensor has 10"):
        varlen_attention(q, q, q, torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="integer"):
        varlen_attention(q, q, q, torch.tensor([0.0, 10.0]))
    with pytest.raises(ValueError, match="describes 2 sequences but cu_seqlens_k 1"):
        varlen_attention(q, q, q, torch.tensor([0, 5, 10]), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="queries but no keys"):
        varlen_attention(q, q, q, torch.tensor([0, 5, 10]), torch.tensor([0, 10, 10]))
    with pytest.raises(ValueError, match="packed"):
        varlen_attention(q[None], q[None], q[None], torch.tensor([0, 10]))
    with pytest.raises(RuntimeError, match="CPU"):
        varlen_attention(q, q, q, torch.tensor([0, 10]), backend="flash")
    with pytest.raises(ValueError, match="non-negative integers"):
        cu_seqlens_from_lengths(torch.tensor([3, -1]))


# ----------------------------------------------------------------------------------------
# rotary embeddings
# ----------------------------------------------------------------------------------------


def rope_scores(rope, q, k, pos_q, pos_k):
    cq, sq = rope(pos_q)
    ck, sk = rope(pos_k)
    return apply_rotary(q, cq, sq) @ apply_rotary(k, ck, sk).T  # (Lq, Lk)


def test_rope_1d_hand_case_and_norm():
    cos, sin = RotaryEmbedding1D(2)(torch.tensor([math.pi / 2]))
    out = apply_rotary(torch.tensor([[1.0, 0.0]]), cos, sin)  # turn (1, 0) by 90 degrees
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0]]), atol=1e-6, rtol=0)
    x = randn(10, 64, seed=1)
    cos, sin = RotaryEmbedding1D(64)(torch.linspace(-50, 50, 10))
    torch.testing.assert_close(apply_rotary(x, cos, sin).norm(dim=-1), x.norm(dim=-1))
    cos, sin = RotaryEmbedding3D(64, scale=10)(randn(10, 3, seed=2))
    torch.testing.assert_close(apply_rotary(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_rope_1d_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding1D(32)
    q, k = randn(6, 32, seed=1), randn(9, 32, seed=2)
    pq, pk = torch.rand(6, generator=gen(3)) * 20, torch.rand(9, generator=gen(4)) * 20
    base = rope_scores(rope, q, k, pq, pk)
    torch.testing.assert_close(rope_scores(rope, q, k, pq + 7.3, pk + 7.3), base, atol=1e-4, rtol=1e-4)
    # not a vacuous check: a non-uniform change of positions does change the scores
    assert (rope_scores(rope, q, k, pq * 2, pk * 2) - base).abs().max() > 0.1


def test_rope_3d_scores_depend_only_on_relative_offset():
    rope = RotaryEmbedding3D(64, scale=8.0)  # 32 pairs -> 11, 11, 10 per axis
    q, k = randn(6, 64, seed=1), randn(9, 64, seed=2)
    pq, pk = torch.rand(6, 3, generator=gen(3)) * 2 - 1, torch.rand(9, 3, generator=gen(4)) * 2 - 1
    base = rope_scores(rope, q, k, pq, pk)
    shift = torch.tensor([0.4, -1.3, 2.2])
    torch.testing.assert_close(rope_scores(rope, q, k, pq + shift, pk + shift), base, atol=1e-4, rtol=1e-4)
    # every axis is encoded: moving one key along any single axis changes its scores
    for axis in range(3):
        moved = pk.clone()
        moved[0, axis] += 0.5
        diff = (rope_scores(rope, q, k, pq, moved) - base).abs()
        assert diff[:, 0].max() > 1e-2 and diff[:, 1:].max() < 1e-5


def test_rope_3d_errors():
    with pytest.raises(ValueError, match="even and >= 6"):
        RotaryEmbedding3D(4)
    with pytest.raises(ValueError, match=r"\(\.\.\., L, 3\)"):
        RotaryEmbedding3D(12)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding1D(7)


# ----------------------------------------------------------------------------------------
# Fourier features and timestep embeddings
# ----------------------------------------------------------------------------------------


def test_fourier_features_hand_case():
    x = torch.tensor([[0.25, 0.0, -0.5]])
    ff = FourierFeatures(in_dim=3, num_bands=2)  # NeRF: frequencies pi, 2 pi
    s, c = math.sin, math.cos
    p = math.pi
    angles = [0.25 * p, 0.25 * 2 * p, 0.0, 0.0, -0.5 * p, -0.5 * 2 * p]  # x_i f_j, i-major
    expected = [0.25, 0.0, -0.5] + [s(a) for a in angles] + [c(a) for a in angles]
    assert ff.out_dim == 15
    torch.testing.assert_close(ff(x), torch.tensor([expected]), atol=1e-6, rtol=0)


def test_fourier_features_shapes_and_variants():
    x = torch.rand(4, 100, 3, generator=gen(1)) * 2 - 1
    log = FourierFeatures(3, num_bands=6, max_freq=64)
    assert log(x).shape == (4, 100, 3 + 36)
    torch.testing.assert_close(log.freqs, math.pi * 2.0 ** torch.linspace(0, 6, 6))
    lin = FourierFeatures(3, num_bands=4, max_freq=10, spacing="linear", include_input=False)
    assert lin(x).shape == (4, 100, 24)
    torch.testing.assert_close(lin.freqs, math.pi * torch.tensor([1.0, 4.0, 7.0, 10.0]))
    g = FourierFeatures(3, num_bands=16, spacing="gaussian", sigma=2.0, seed=5)
    out = g(x)
    assert out.shape == (4, 100, 3 + 32) and g.out_dim == 35
    torch.testing.assert_close(out[..., 3:19], torch.sin(2 * math.pi * x @ g.B.T))
    torch.testing.assert_close(FourierFeatures(3, 16, spacing="gaussian", seed=5).B * 2.0, g.B)  # deterministic
    other_seed = FourierFeatures(3, 16, spacing="gaussian", seed=6).B
    assert not torch.equal(other_seed, FourierFeatures(3, 16, spacing="gaussian", seed=5).B)
    assert "B" in g.state_dict()  # the random directions are saved with the model
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        log(torch.zeros(10, 2))


def test_fourier_kernel_is_shift_invariant():
    # gamma(p) . gamma(p') = sum cos(f (p - p')): same offset -> same similarity
    ff = FourierFeatures(3, num_bands=5, include_input=False)
    p = torch.rand(8, 3, generator=gen(1)) * 2 - 1
    offset = torch.tensor([0.1, -0.05, 0.2])
    sim = (ff(p) * ff(p + offset)).sum(-1)
    expected = torch.cos(offset[:, None] * ff.freqs).sum()
    torch.testing.assert_close(sim, expected.expand(8), atol=1e-5, rtol=1e-5)


def test_timestep_embedding_formula():
    emb = timestep_embedding(torch.tensor([0.0, 1.0]), dim=4)  # frequencies 1, 10000^(-1/2) = 0.01
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0], [math.cos(1.0), math.cos(0.01), math.sin(1.0), math.sin(0.01)]])
    torch.testing.assert_close(emb, expected)
    odd = timestep_embedding(torch.tensor([3.0]), dim=5)
    assert odd.shape == (1, 5) and odd[0, -1] == 0
    per_token = timestep_embedding(torch.rand(2, 7, generator=gen(1)), dim=16)
    assert per_token.shape == (2, 7, 16)
    te = TimestepEmbedder(32, freq_dim=16, t_scale=1000.0)
    t = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(te(t), te.mlp(timestep_embedding(t * 1000, 16)))


# ----------------------------------------------------------------------------------------
# modules
# ----------------------------------------------------------------------------------------


def test_mha_self_attention_is_permutation_equivariant():
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, heads=4)
    x = randn(2, 10, 32, seed=1)
    perm = torch.randperm(10, generator=gen(2))
    torch.testing.assert_close(attn(x[:, perm]), attn(x)[:, perm], atol=1e-5, rtol=1e-5)
    # cross-attention is invariant to the order of the context (a point set)
    cross = MultiHeadAttention(32, heads=4, kv_dim=3 + 36)
    ctx = FourierFeatures(3, 6)(randn(2, 50, 3, seed=3))
    p = torch.randperm(50, generator=gen(4))
    torch.testing.assert_close(cross(x, ctx[:, p]), cross(x, ctx), atol=1e-5, rtol=1e-5)


def test_mha_with_rope_sees_only_relative_positions():
    torch.manual_seed(0)
    x = randn(2, 12, 48, seed=1)
    attn3 = MultiHeadAttention(48, heads=4, qk_norm=True, rotary=RotaryEmbedding3D(12, scale=16.0))
    xyz = randn(2, 12, 3, seed=2)
    out = attn3(x, pos=xyz)
    torch.testing.assert_close(attn3(x, pos=xyz + torch.tensor([1.0, -2.0, 0.5])), out, atol=1e-4, rtol=1e-4)
    assert (attn3(x, pos=xyz * 1.5) - out).abs().max() > 1e-3
    # precomputed (cos, sin) give the same result as positions
    torch.testing.assert_close(attn3(x, rope=attn3.rotary(xyz)), out)
    # permuting tokens together with their positions permutes the output
    perm = torch.randperm(12, generator=gen(3))
    torch.testing.assert_close(attn3(x[:, perm], pos=xyz[:, perm]), out[:, perm], atol=1e-5, rtol=1e-5)
    attn1 = MultiHeadAttention(48, heads=4, rotary=RotaryEmbedding1D(12))
    t = torch.arange(12.0)
    torch.testing.assert_close(attn1(x, pos=t + 100), attn1(x, pos=t), atol=1e-4, rtol=1e-4)


def test_mha_errors():
    x = randn(1, 5, 16)
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(16, heads=3)
    with pytest.raises(ValueError, match="no rotary"):
        MultiHeadAttention(16, heads=2)(x, pos=torch.arange(5.0))
    cross = MultiHeadAttention(16, heads=2, kv_dim=4, rotary=RotaryEmbedding1D(8))
    with pytest.raises(ValueError, match="needs context_pos"):
        cross(x, randn(1, 7, 4), pos=torch.arange(5.0))
    with pytest.raises(ValueError, match="head_dim=8"):
        MultiHeadAttention(16, heads=2)(x, rope=RotaryEmbedding1D(4)(torch.arange(5.0)))


def test_adaln_zero_block_starts_as_identity_and_takes_per_token_cond():
    torch.manual_seed(0)
    block = Block(32, heads=4, cond_dim=16)
    x, cond = randn(2, 10, 32, seed=1), randn(2, 16, seed=2)
    torch.testing.assert_close(block(x, cond=cond), x, atol=0, rtol=0)
    torch.nn.init.normal_(block.adaln[1].weight, std=0.1)
    out = block(x, cond=cond)
    assert (out - x).abs().max() > 1e-2
    # per-token conditioning equal on all tokens == per-sample conditioning
    torch.testing.assert_close(block(x, cond=cond[:, None].expand(2, 10, 16)), out, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="cond must be given"):
        block(x)
    with pytest.raises(ValueError, match="context must be given"):
        block(x, cond=cond, context=x)


def make_full_block():
    torch.manual_seed(0)
    block = Block(48, heads=4, context_dim=20, cond_dim=24, qk_norm=True, rotary=RotaryEmbedding3D(12, scale=8.0))
    torch.nn.init.normal_(block.adaln[1].weight, std=0.1)  # leave the zero init so gates open
    x, ctx = randn(2, 16, 48, seed=1), randn(2, 30, 20, seed=2)  # tokens, context
    cond, xyz = randn(2, 24, seed=3), randn(2, 16, 3, seed=4)  # conditioning vector, 3D positions
    return block, (x, ctx, cond, xyz)


def test_block_gradients_flow_to_every_parameter():
    block, (x, ctx, cond, xyz) = make_full_block()
    x.requires_grad_()
    block(x, cond=cond, context=ctx, pos=xyz).square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_block_bf16_autocast():
    block, (x, ctx, cond, xyz) = make_full_block()
    ref = block(x, cond=cond, context=ctx, pos=xyz)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x, cond=cond, context=ctx, pos=xyz)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() / ref.abs().max() < 5e-2
    out.float().sum().backward()  # backward also works in mixed precision
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())


# ----------------------------------------------------------------------------------------
# CUDA paths (skipped without a GPU)
# ----------------------------------------------------------------------------------------


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_dense_backends_match_math(dtype):
    q, k, v = (randn(2, 4, 128, 64, seed=s).cuda().to(dtype) for s in (1, 2, 3))
    ref = attention(q.float(), k.float(), v.float(), backend="math")
    tol = 1e-3 if dtype == torch.float32 else 3e-2
    backends = ["sdpa"] + (["xformers"] if importlib.util.find_spec("xformers") else [])
    for backend in backends:
        assert (attention(q, k, v, backend=backend).float() - ref).abs().max() < tol, backend


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_varlen_backends_agree(dtype):
    lq, lk = [40, 7, 130, 1], [33, 64, 12, 5]
    q, k, v = randn(sum(lq), 4, 64, seed=1), randn(sum(lk), 4, 64, seed=2), randn(sum(lk), 4, 64, seed=3)
    ref = per_sequence_reference(q, k, v, lq, lk).cuda()
    cu_q, cu_k = cu_seqlens_from_lengths(torch.tensor(lq)).cuda(), cu_seqlens_from_lengths(torch.tensor(lk)).cuda()
    q, k, v = (t.cuda().to(dtype) for t in (q, k, v))
    backends = ["auto", "loop", "masked", "nested"]
    if importlib.util.find_spec("xformers"):
        backends.append("xformers")
    if importlib.util.find_spec("flash_attn") and dtype == torch.bfloat16:
        backends.append("flash")
    tol = 1e-3 if dtype == torch.float32 else 3e-2
    for backend in backends:
        out = varlen_attention(q, k, v, cu_q, cu_k, backend=backend)
        assert (out.float() - ref).abs().max() < tol, backend


def test_packed_block_matches_per_sequence_calls():
    """Packed (T, dim) tokens with cu_seqlens == running each sequence on its own."""
    block, _ = make_full_block()
    lens, ctx_lens = [5, 12, 1], [8, 3, 6]
    x, ctx = randn(sum(lens), 48, seed=1), randn(sum(ctx_lens), 20, seed=2)
    cond, xyz = randn(sum(lens), 24, seed=3), randn(sum(lens), 3, seed=4)  # per-token conditioning
    cu, cu_ctx = cu_seqlens_from_lengths(torch.tensor(lens)), cu_seqlens_from_lengths(torch.tensor(ctx_lens))
    packed = block(x, cond=cond, context=ctx, pos=xyz, cu_seqlens=cu, context_cu_seqlens=cu_ctx)
    assert packed.shape == x.shape
    a, c = 0, 0
    for n, m in zip(lens, ctx_lens):
        ref = block(x[None, a:a + n], cond=cond[None, a:a + n], context=ctx[None, c:c + m], pos=xyz[None, a:a + n])
        torch.testing.assert_close(packed[a:a + n], ref[0], atol=1e-5, rtol=1e-5)
        a, c = a + n, c + m
    with pytest.raises(ValueError, match="mask cannot be combined"):
        block.attn(x, cu_seqlens=cu, mask=torch.ones(1, 1, 1, sum(lens), dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(T, dim\)"):
        block.attn(x[None], cu_seqlens=cu)


# ----------------------------------------------------------------------------- shared blocks
def test_frame_and_global_attention_are_the_two_reshapes():
    """frame_attention = the block on each frame alone; global_attention = the block on all
    frames' tokens of a sample at once. Rotary angles follow their tokens in both."""
    torch.manual_seed(0)
    B, S, M, D, H = 2, 3, 5, 16, 2
    blk = Block(D, H, qk_norm=True).eval()
    rope3d = RotaryEmbedding3D(D // H)
    h, pos = torch.randn(B, S, M, D), torch.rand(B, S, M, 3)
    rope = rope3d(pos)                                   # (cos, sin), each (B, S, M, head_dim)
    per_frame = torch.stack([blk(h[:, s], rope=rope3d(pos[:, s])) for s in range(S)], 1)
    torch.testing.assert_close(frame_attention(blk, h, rope=rope), per_frame)
    flat = blk(h.reshape(B, S * M, D), rope=rope3d(pos.reshape(B, S * M, 3))).reshape(B, S, M, D)
    torch.testing.assert_close(global_attention(blk, h, rope=rope), flat)
    # frames mix only in the global one: changing frame 2 moves frame 0's output there only
    h2 = h.clone()
    h2[:, 2] += torch.randn(B, M, D)          # not a constant: LayerNorm would remove a per-token shift
    assert torch.equal(frame_attention(blk, h2, rope=rope)[:, 0], frame_attention(blk, h, rope=rope)[:, 0])
    assert not torch.allclose(global_attention(blk, h2, rope=rope)[:, 0], global_attention(blk, h, rope=rope)[:, 0])
    with pytest.raises(ValueError, match=r"tokens must be \(B, S, M, D\)"):
        frame_attention(blk, h[0])
    with pytest.raises(ValueError, match="rope"):
        global_attention(blk, h, rope=rope3d(pos[:, :2]))


def test_adaln_zero_blocks_start_as_the_identity():
    torch.manual_seed(0)
    x, ctx, cond = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 12)
    assert not adaln_zero(12, 8, 6)(cond).any()
    torch.testing.assert_close(Block(8, 2, cond_dim=12)(x, cond=cond), x)
    torch.testing.assert_close(CrossAttentionBlock(8, 2, cond_dim=12)(x, ctx, cond=cond), x)
    plain = CrossAttentionBlock(8, 2)
    assert not torch.allclose(plain(x, ctx), x)   # without adaLN the residual branches are live
    with pytest.raises(ValueError, match="cond must be given exactly"):
        plain(x, ctx, cond=cond)
