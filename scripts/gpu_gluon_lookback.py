"""Session 18's experiment: the B=1 look-back in Gluon with each piece held in shared memory.

    python scripts/gpu_gluon_lookback.py BT,NCH,VEC,NW,W,RES ...   # on a GPU machine

A standalone prototype for the real semiring (`h = a * h + b`, bf16 in and out, fp32
state), not part of madc: each program takes pieces of NCH chunks of BT rows and VEC x 32 x NW
channels by ticket (RES programs per SM), copies the piece into shared memory with cp.async
(one group per chunk), folds its aggregate from there, looks back over windows of W
predecessors as `<op>_lookback_kernel` does, then walks the piece from shared memory,
writing the states. So each input is read from HBM once. On an H100 at B=1 T=65536 D=256 it
measured 56% of the I/O roofline at best (16,12,2,1,8,4) against 53.6% for madc's look-back
and 56.9% for accelerated-scan in the same call; larger windows or pieces were slower
(docs/triton.md, "Session 18"). It prints each configuration's CUDA-graph time, its share
of the roofline and its largest error against madc's sequential forward.

Session 19 added `PIPE` (a configuration written `pBT,NCH,...`): two pieces per
program in shared memory, the next piece's copy issued before this piece's aggregate,
look-back and walk, so reads stay in flight while a program waits on its predecessors (session
18's programs all loaded, then all looked back, then all wrote). Compiled for sm_90 on the CPU
(tests/test_gpu_gluon_lookback.py). Timed on an H100 in sessions 20 and 24: slower than one
piece in every row (29-44% of the roofline against 56%; holding two pieces halves the
programs per SM).
"""

from __future__ import annotations

import importlib
import sys

import torch
import triton
import triton.testing
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy


@gluon.jit
def _comb(a1, b1, a2, b2):
    return a2 * a1, a2 * b1 + b2


@gluon.jit
def _pub(x):
    return x.to(gl.int32, bitcast=True) != -1


@gluon.jit
def _publish(p, x):
    bits = x.to(gl.int32, bitcast=True)
    gl.store(p, gl.where(bits == -1, bits - 1, bits).to(gl.float32, bitcast=True))


@gluon.jit
def _resolve_and_walk(s_a, s_b, base, A, B, p_h0, p_hs, p_ht, p_agg_a, p_agg_b, p_inc, i_p,
                      i_c, t0, t1, C, NP, r_s, c_s, c_w, o_r, last, first, BT: gl.constexpr,
                      NCH: gl.constexpr, BC: gl.constexpr, W: gl.constexpr,
                      SL: gl.constexpr, WL: gl.constexpr):
    # a piece whose chunks sit in shared memory at base .. base + NCH - 1 and whose aggregate
    # is (A, B): publish the aggregate, look back over windows of W predecessors for its
    # incoming state, publish its last state, then walk the chunks writing the states
    dt = p_hs.dtype.element_ty
    o_cs = i_c * BC + c_s
    h = gl.load(p_h0 + o_cs)
    o_sw = i_p.to(gl.int64) * C + i_c * BC + c_w
    if i_p > 0:
        _publish(p_agg_a + o_sw, gl.convert_layout(A, gl.SliceLayout(0, WL)))
        _publish(p_agg_b + o_sw, gl.convert_layout(B, gl.SliceLayout(0, WL)))
        fA = gl.full([BC], 1.0, gl.float32, gl.SliceLayout(0, WL))
        fB = gl.full([BC], 0.0, gl.float32, gl.SliceLayout(0, WL))
        hw = gl.convert_layout(h, gl.SliceLayout(0, WL))
        j = i_p - 1
        while j >= 0:
            o_w = j - (W - 1) + o_r
            m_w = o_w >= 0
            o_f = o_w.to(gl.int64)[:, None] * C + (i_c * BC + c_w)[None, :]
            m_f = m_w[:, None] & (c_w >= 0)[None, :]
            wa = gl.load(p_agg_a + o_f, mask=m_f, other=1.0, volatile=True)
            wb = gl.load(p_agg_b + o_f, mask=m_f, other=0.0, volatile=True)
            ws = gl.load(p_inc + o_f, mask=m_f, other=0.0, volatile=True)
            s_ok = (gl.min((_pub(ws) | ~m_f).to(gl.int32), 1) != 0) | ~m_w
            a_ok = gl.min((_pub(wa) & _pub(wb) | ~m_f).to(gl.int32), 1) != 0
            k = gl.max(gl.where(s_ok, o_w, j - W), 0)
            z = gl.max(gl.where(s_ok | a_ok, j - W, o_w), 0)
            lo = gl.maximum(k, z)
            m_x = (o_w > lo)[:, None]
            qa, qb = gl.associative_scan((gl.where(m_x, wa, 1.0), gl.where(m_x, wb, 0.0)),
                                         0, _comb)
            lw = (o_r == W - 1)[:, None]
            fA, fB = _comb(gl.sum(gl.where(lw, qa, 0.0), 0),
                           gl.sum(gl.where(lw, qb, 0.0), 0), fA, fB)
            if k > z:
                hs_k = gl.sum(gl.where((o_w == k)[:, None], ws, 0.0), 0)
                hw = fA * gl.where(k >= 0, hs_k, hw) + fB
                j = -2
            else:
                j = lo
        if j == -1:
            hw = fA * hw + fB
        h = gl.convert_layout(hw, gl.SliceLayout(0, SL))
    if i_p < NP - 1:
        _publish(p_inc + o_sw, gl.convert_layout(A * h + B, gl.SliceLayout(0, WL)))
    o_st = (t0 + r_s).to(gl.int64)[:, None] * C + o_cs[None, :]
    for ch in gl.static_range(NCH):
        v = ((t0 + ch * BT + r_s) < t1)[:, None]
        xa = gl.where(v, s_a.index(base + ch).load(SL).to(gl.float32), 1.0)
        xb = gl.where(v, s_b.index(base + ch).load(SL).to(gl.float32), 0.0)
        xb = gl.where(first, xa * h[None, :] + xb, xb)
        sa, y = gl.associative_scan((xa, xb), 0, _comb)
        gl.store(p_hs + o_st + ch * BT * C, y.to(dt), mask=v & (o_cs >= 0)[None, :])
        h = gl.sum(gl.where(last, y, 0.0), 0)
    if i_p == NP - 1:
        gl.store(p_ht + o_cs, h)


@gluon.jit
def _issue(s_a, s_b, slot, p_a, p_b, t0, t1, o_cp, r_c, C, BT: gl.constexpr,
           NCH: gl.constexpr):
    # a piece's chunks into shared memory slot `slot`, one cp.async group per chunk (masked
    # to nothing past t1: the waits count a constant number of groups)
    for ch in gl.static_range(NCH):
        m = ((t0 + ch * BT + r_c) < t1)[:, None]
        async_copy.async_copy_global_to_shared(s_a.index(slot * NCH + ch),
                                               p_a + o_cp + ch * BT * C, mask=m)
        async_copy.async_copy_global_to_shared(s_b.index(slot * NCH + ch),
                                               p_b + o_cp + ch * BT * C, mask=m)
        async_copy.commit_group()


@gluon.jit
def _aggregate(s_a, s_b, base, t0, t1, r_s, last, AHEAD: gl.constexpr, BT: gl.constexpr,
               NCH: gl.constexpr, BC: gl.constexpr, SL: gl.constexpr):
    # the piece's aggregate (A, B), folded a chunk at a time as its copies land (AHEAD: the
    # copy groups committed after this piece's)
    A = gl.full([BC], 1.0, gl.float32, gl.SliceLayout(0, SL))
    B = gl.full([BC], 0.0, gl.float32, gl.SliceLayout(0, SL))
    for ch in gl.static_range(NCH):
        async_copy.wait_group(AHEAD + NCH - 1 - ch)
        gl.thread_barrier()
        v = ((t0 + ch * BT + r_s) < t1)[:, None]
        xa = gl.where(v, s_a.index(base + ch).load(SL).to(gl.float32), 1.0)
        xb = gl.where(v, s_b.index(base + ch).load(SL).to(gl.float32), 0.0)
        sa, sb = gl.associative_scan((xa, xb), 0, _comb)
        A, B = _comb(A, B, gl.sum(gl.where(last, sa, 0.0), 0),
                     gl.sum(gl.where(last, sb, 0.0), 0))
    return A, B


@gluon.jit
def b1_kernel(p_a, p_b, p_h0, p_hs, p_ht, p_ticket, p_agg_a, p_agg_b, p_inc, C, T, NP,
              BT: gl.constexpr, NCH: gl.constexpr, VEC: gl.constexpr, NW: gl.constexpr,
              W: gl.constexpr, CPV: gl.constexpr, TPR: gl.constexpr, TPC: gl.constexpr,
              PIPE: gl.constexpr):
    # PIPE: two pieces per program in shared memory, the next piece's copy issued before this
    # piece's aggregate, look-back and walk, so HBM reads stay in flight while a program
    # waits on its predecessors (without it a program copies, waits, looks back and writes)
    BC: gl.constexpr = VEC * 32 * NW
    PIECE: gl.constexpr = BT * NCH
    SLOTS: gl.constexpr = 2 if PIPE else 1
    SL: gl.constexpr = gl.BlockedLayout([BT, VEC], [1, 32], [1, NW], [1, 0])
    WL: gl.constexpr = gl.BlockedLayout([W, VEC], [1, 32], [1, NW], [1, 0])
    CL: gl.constexpr = gl.BlockedLayout([1, CPV], [TPR, TPC], [NW, 1], [1, 0])
    SM: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])
    dt = p_a.dtype.element_ty
    s_a = gl.allocate_shared_memory(dt, [SLOTS * NCH, BT, BC], SM)
    s_b = gl.allocate_shared_memory(dt, [SLOTS * NCH, BT, BC], SM)
    n_c = C // BC
    total = NP * n_c
    r_c = gl.arange(0, BT, layout=gl.SliceLayout(1, CL))
    c_c = gl.arange(0, BC, layout=gl.SliceLayout(0, CL))
    r_s = gl.arange(0, BT, layout=gl.SliceLayout(1, SL))
    c_s = gl.arange(0, BC, layout=gl.SliceLayout(0, SL))
    c_w = gl.arange(0, BC, layout=gl.SliceLayout(0, WL))
    o_r = gl.arange(0, W, layout=gl.SliceLayout(1, WL))
    last = (r_s == BT - 1)[:, None]
    first = (r_s == 0)[:, None]
    ticket = gl.atomic_add(p_ticket, 1) + 1
    slot = 0
    if PIPE:
        t0 = (ticket // n_c) * PIECE
        o_cp = (t0 + r_c).to(gl.int64)[:, None] * C + ((ticket % n_c) * BC + c_c)[None, :]
        _issue(s_a, s_b, 0, p_a, p_b, t0, gl.minimum(t0 + PIECE, T), o_cp, r_c, C, BT, NCH)
    while ticket < total:
        i_p = ticket // n_c
        i_c = ticket % n_c
        t0 = i_p * PIECE
        t1 = gl.minimum(t0 + PIECE, T)
        if PIPE:  # the next piece's copy (masked to nothing past the last piece)
            nxt = gl.atomic_add(p_ticket, 1) + 1
            n0 = (nxt // n_c) * PIECE
            o_np = (n0 + r_c).to(gl.int64)[:, None] * C + ((nxt % n_c) * BC + c_c)[None, :]
            _issue(s_a, s_b, 1 - slot, p_a, p_b, n0,
                   gl.minimum(n0 + PIECE, T) * (nxt < total), o_np, r_c, C, BT, NCH)
        else:  # this piece's copy
            o_cp = (t0 + r_c).to(gl.int64)[:, None] * C + (i_c * BC + c_c)[None, :]
            _issue(s_a, s_b, 0, p_a, p_b, t0, t1, o_cp, r_c, C, BT, NCH)
        A, B = _aggregate(s_a, s_b, slot * NCH, t0, t1, r_s, last, NCH if PIPE else 0, BT,
                          NCH, BC, SL)
        _resolve_and_walk(s_a, s_b, slot * NCH, A, B, p_h0, p_hs, p_ht, p_agg_a, p_agg_b,
                          p_inc, i_p, i_c, t0, t1, C, NP, r_s, c_s, c_w, o_r, last, first,
                          BT, NCH, BC, W, SL, WL)
        gl.thread_barrier()
        if PIPE:
            ticket = nxt
            slot = 1 - slot
        else:
            ticket = gl.atomic_add(p_ticket, 1) + 1
    async_copy.wait_group(0)


def launch(a, b, h0, hs, ht, BT, NCH, VEC, NW, W, RES, sms, pipe=False):
    T, C = a.shape
    BC = VEC * 32 * NW
    assert C % BC == 0
    piece = BT * NCH
    NP = -(-T // piece)
    n_c = C // BC
    CPV = 16 // a.element_size()
    TPC = min(32, BC // CPV)
    TPR = 32 // TPC
    buf = torch.full((4 + 3 * NP * C,), -1, dtype=torch.int32, device=a.device)
    sl = buf[4:].view(torch.float32).view(3, NP, C)
    grid = (min(NP * n_c, RES * sms),)
    b1_kernel[grid](a, b, h0, hs, ht, buf, sl[0], sl[1], sl[2], C, T, NP, BT=BT, NCH=NCH, VEC=VEC,
                    NW=NW, W=W, CPV=CPV, TPR=TPR, TPC=TPC, PIPE=pipe, num_warps=NW)


def main(configs):
    import madc
    from madc import anchors
    from madc.bench import copy_bandwidth, timer

    dev = torch.device("cuda")
    T, D = 65536, 256
    mod = madc.load("examples/scans/linear_scan.scan", backend="triton", D=D).to(dev)
    tv = importlib.import_module(type(mod).__module__ + ".triton_vector")
    a = torch.sigmoid(torch.randn(1, T, D, device=dev) + 2).to(torch.bfloat16)
    b = torch.randn(1, T, D, device=dev).to(torch.bfloat16)
    h0 = torch.randn(1, D, device=dev)
    roof = 3 * a.numel() * a.element_size() / copy_bandwidth(dev, timer(dev)) * 1e3
    with torch.no_grad():
        (ref,), (rt,) = tv.scan({"a": a, "b": b}, {}, mod.dims, [h0], None,
                                chunk_parallel=False)
        g = triton.testing.do_bench_cudagraph(
            lambda: tv.scan({"a": a, "b": b}, {}, mod.dims, [h0], None), rep=60)
    print(f"madc look-back: {g:.4f} ms = {roof / g:.1%} of the roofline", flush=True)
    for name, (fn, args) in anchors.diagonal_anchors(a, b).items():
        if "accelerated" in name:
            t = triton.testing.do_bench_cudagraph(lambda: fn(*args), rep=60)  # noqa: B023
            print(f"{name}: {t:.4f} ms = {roof / t:.1%}", flush=True)
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    hs = torch.empty_like(a[0])
    ht = torch.empty(D, device=dev)
    for cfg in configs:
        pipe = cfg.startswith("p")
        BT, NCH, VEC, NW, W, RES = map(int, cfg.lstrip("p").split(","))

        def run():
            launch(a[0], b[0], h0[0], hs, ht, BT, NCH, VEC, NW, W, RES, sms, pipe)  # noqa: B023

        run()
        torch.cuda.synchronize()
        err = max((hs.float() - ref[0].float()).abs().max().item(),
                  (ht - rt[0].float()).abs().max().item())
        t = triton.testing.do_bench_cudagraph(run, rep=60)
        print(f"gluon {cfg}: {t:.4f} ms = {roof / t:.1%}; largest error {err:.1e}", flush=True)
    print(f"roofline {roof:.4f} ms")


if __name__ == "__main__":
    main(sys.argv[1:] or ["16,12,2,1,8,4", "16,8,2,2,8,3"])
