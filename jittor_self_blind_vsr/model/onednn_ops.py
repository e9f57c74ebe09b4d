"""CPU inference ops on oneDNN's own memory layouts: convolution and pixel shuffle.

Jittor's oneDNN convolution (what jt.nn.conv2d runs on CPU) builds its primitive,
allocates its buffers, reorders NCHW to oneDNN's 16-channel blocks and back, and copies
its output once more on every call; bias and ReLU follow as separate single-threaded
passes. For a 128-channel 3x3 conv at 180x320 that is 73 ms against 50 ms here. conv2d
below keeps the trunk's features in the layout oneDNN's kernel works on (`nChw16c`
under its direct kernel, `nhwc` under brgconv), caches one primitive per geometry, and
fuses bias and ReLU into the kernel, which sums in the same order as Jittor's (outputs
differ only by the bias being added inside the accumulator: ~1 ulp).

These ops have no gradient: trunk_layout (and FastConv2d below, at --precision fast) uses
them only while Jittor records none (jt.no_grad); training runs on Jittor's differentiable
convolutions. Nothing but trunk_layout uses the non-NCHW layouts.

A tensor in `nChw16c` is a Jittor Var of shape (N, C/16, H, W, 16): channel c of pixel
(h, w) at [n, c // 16, h, w, c % 16].
"""
import functools

import jittor as jt

from jittor_self_blind_vsr.runtime import current_precision, fast_kernels_usable, onednn_dir, onednn_uses_brgconv

NCHW, NHWC, BLOCKED = 'nchw', 'nhwc', 'nChw16c'
LAYOUTS = (NCHW, NHWC, BLOCKED)
BLOCK = 16

_CONV_HEADER = r'''
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>
#include "dnnl.hpp"

namespace sbvsr_onednn {
using namespace dnnl;
using tag = memory::format_tag;

enum Key { N, IC, IH, IW, OC, OH, OW, KH, KW, STRIDE, PAD, DILATION, RELU, SRC_LAYOUT, DST_LAYOUT, WINOGRAD, NO_BRGCONV };

static tag layout_tag(int64_t layout) {
    return layout == 0 ? tag::nchw : layout == 1 ? tag::nhwc : tag::nChw16c;
}

static engine& cpu_engine() { static engine eng(engine::kind::cpu, 0); return eng; }
static stream& cpu_stream() { static stream s(cpu_engine()); return s; }

static reorder make_reorder(const memory::desc& from, const memory::desc& to) {
    return reorder(reorder::primitive_desc(cpu_engine(), from, cpu_engine(), to));
}

// One convolution geometry: the primitive oneDNN picked for it (all formats "any", as
// Jittor's own op asks, so the same kernel runs) and the reorders between the caller's
// layouts and the ones that kernel wants. With WINOGRAD it asks for the Winograd
// algorithm first and takes oneDNN's own choice where no Winograd kernel fits. With
// NO_BRGCONV it takes the direct kernel where oneDNN would pick brgconv, which works on
// NHWC: on blocked or NCHW tensors brgconv pays two reorders (the 128->3 conv at 720x1280:
// 380 ms against 119 ms).
struct Plan {
    memory::desc user_src, user_dst, user_weights, bias;
    convolution_forward::primitive_desc pd;
    convolution_forward conv;
    reorder weights_in, src_in, dst_out;
    bool reorder_src = false, reorder_dst = false, winograd = false;
    // Winograd weights computed by winograd_weights below, not by oneDNN's reorder; set
    // once the two have agreed on a plan's first weights (transformed_weights).
    bool own_transform = false, transform_checked = false;
};

static bool is_brgconv(const convolution_forward::primitive_desc& pd) {
    return std::string(pd.impl_info_str()).compare(0, 7, "brgconv") == 0;
}

static Plan make_plan(const std::vector<int64_t>& k) {
    using dt = memory::data_type;
    memory::dims src{k[N], k[IC], k[IH], k[IW]}, dst{k[N], k[OC], k[OH], k[OW]};
    memory::dims weights{k[OC], k[IC], k[KH], k[KW]};
    Plan p;
    p.user_src = memory::desc(src, dt::f32, layout_tag(k[SRC_LAYOUT]));
    p.user_dst = memory::desc(dst, dt::f32, layout_tag(k[DST_LAYOUT]));
    p.user_weights = memory::desc(weights, dt::f32, tag::oihw);
    p.bias = memory::desc({k[OC]}, dt::f32, tag::x);
    auto desc = [&](algorithm alg) {
        return convolution_forward::desc(prop_kind::forward_inference, alg,
            memory::desc(src, dt::f32, tag::any), memory::desc(weights, dt::f32, tag::any), p.bias,
            memory::desc(dst, dt::f32, tag::any), {k[STRIDE], k[STRIDE]}, {k[DILATION] - 1, k[DILATION] - 1},
            {k[PAD], k[PAD]}, {k[PAD], k[PAD]});
    };
    primitive_attr attr;
    if (k[RELU]) {
        post_ops ops;
        ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
        attr.set_post_ops(ops);
    }
    bool found = false;
    if (k[WINOGRAD]) {
        try {
            p.pd = convolution_forward::primitive_desc(desc(algorithm::convolution_winograd), attr, cpu_engine());
            found = p.winograd = true;
        } catch (const error&) {}
    }
    if (!found) p.pd = convolution_forward::primitive_desc(desc(algorithm::convolution_auto), attr, cpu_engine());
    if (!found && k[NO_BRGCONV] && is_brgconv(p.pd)) {
        convolution_forward::primitive_desc direct(desc(algorithm::convolution_direct), attr, cpu_engine());
        while (is_brgconv(direct) && direct.next_impl()) {}
        if (std::string(direct.impl_info_str()).compare(0, 3, "jit") == 0) p.pd = direct;  // jit: or jit_1x1:
    }
    p.conv = convolution_forward(p.pd);
    p.weights_in = make_reorder(p.user_weights, p.pd.weights_desc());
    p.reorder_src = p.pd.src_desc() != p.user_src;
    if (p.reorder_src) p.src_in = make_reorder(p.user_src, p.pd.src_desc());
    p.reorder_dst = p.pd.dst_desc() != p.user_dst;
    if (p.reorder_dst) p.dst_out = make_reorder(p.pd.dst_desc(), p.user_dst);
    return p;
}

static Plan& plan_for(const std::vector<int64_t>& key) {
    static std::map<std::vector<int64_t>, Plan> plans;
    auto found = plans.find(key);
    if (found == plans.end()) found = plans.emplace(key, make_plan(key)).first;
    return found->second;
}

// Scratch memory shared by all plans (ops run one at a time), grown, never shrunk:
// fresh buffers would page-fault in on every call.
static float* scratch(int slot, size_t bytes) {
    static std::vector<float> buffers[3];
    auto& buffer = buffers[slot];
    if (buffer.size() * sizeof(float) < bytes) buffer.resize(bytes / sizeof(float) + 1);
    return buffer.data();
}

// oneDNN 2.2's Winograd weight transform U = G w G^T (its interpolation points and scaling,
// cpu/x64/wino_reorder.hpp), written straight into the layout its kernel reads: for
// F(4x4, 3x3) (alpha 6) OBaaIBOIio, U[a][b] of input channel i, output channel o at
//   ((((((occ * 6 + a) * 6 + b) * ic_chunks + icc) * oc2 + ob) * ic2 + ib) * ic_block + ii) * oc_block + oo
// for i = (icc * ic2 + ib) * ic_block + ii and o = (occ * oc2 + ob) * oc_block + oo; for
// F(2x2, 3x3) (alpha 4, which oneDNN picks for some small images) aaOio, at
//   ((a * 4 + b) * oc_blocks + o / oc_block) * ic * oc_block + i * oc_block + o % oc_block,
// or aaOBiOo, at
//   (((((a * 4 + b) * oc_chunks + occ) * ic_blocks + i / ic_block) * ic_block + i % ic_block) * oc2 + ob) * oc_block + oo.
// oneDNN's reorder takes 1.2 ms per 128->128 conv on 2 threads (a scalar transform, then a
// second pass to lay it out); this single pass takes a tenth of that. Training changes the
// weights every step, and its no-grad reconstruction then transforms every trunk conv's.
static const float WINO_G_4X3[6][3] = {{1.13777777777778f, 0.f, 0.f},
    {-0.688403361344538f, -0.430252100840336f, -0.26890756302521f},
    {-0.688403361344538f, 0.430252100840336f, -0.26890756302521f},
    {0.119514472455649f, 0.179271708683473f, 0.26890756302521f},
    {0.119514472455649f, -0.179271708683473f, 0.26890756302521f},
    {0.f, 0.f, 1.f}};
static const float WINO_G_2X3[4][3] = {{1.f, 0.f, 0.f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.f, 0.f, 1.f}};
static const int MAX_OC_BLOCK = 64;

static bool own_transform_fits(const memory::desc& weights) {
    const dnnl_memory_desc_t& md = weights.data;
    if (md.format_kind != dnnl_format_kind_wino) return false;
    const dnnl_wino_desc_t& d = md.format_desc.wino_desc;
    const bool known = (d.wino_format == dnnl_wino_wei_OBaaIBOIio && d.alpha == 6
                        && d.ic % (d.ic_block * d.ic2_block) == 0 && d.oc % (d.oc_block * d.oc2_block) == 0)
                       || (d.wino_format == dnnl_wino_wei_aaOio && d.alpha == 4)
                       || (d.wino_format == dnnl_wino_wei_aaOBiOo && d.alpha == 4
                           && d.oc % (d.oc_block * d.oc2_block) == 0);
    return known && d.r == 3 && d.oc_block <= MAX_OC_BLOCK && d.ic % d.ic_block == 0 && d.oc % d.oc_block == 0
        && weights.get_size() >= (size_t)d.alpha * d.alpha * d.ic * d.oc * sizeof(float);
}

// Offset of U[a][b] for input channel i and the first output channel of block ob_all.
static int64_t wino_offset(const dnnl_wino_desc_t& d, int a, int b, int i, int ob_all) {
    if (d.wino_format == dnnl_wino_wei_aaOio)
        return (((int64_t)a * d.alpha + b) * (d.oc / d.oc_block) + ob_all) * d.ic * d.oc_block + (int64_t)i * d.oc_block;
    if (d.wino_format == dnnl_wino_wei_aaOBiOo) {
        const int64_t oc_chunks = d.oc / (d.oc_block * d.oc2_block), occ = ob_all / d.oc2_block, ob = ob_all % d.oc2_block;
        return (((((int64_t)a * d.alpha + b) * oc_chunks + occ) * (d.ic / d.ic_block) + i / d.ic_block) * d.ic_block
                + i % d.ic_block) * d.oc2_block * d.oc_block + ob * d.oc_block;
    }
    const int64_t ic_chunks = d.ic / (d.ic_block * d.ic2_block);
    const int64_t occ = ob_all / d.oc2_block, ob = ob_all % d.oc2_block;
    const int64_t icc = i / (d.ic_block * d.ic2_block), ib = i / d.ic_block % d.ic2_block, ii = i % d.ic_block;
    return ((((((occ * d.alpha + a) * d.alpha + b) * ic_chunks + icc) * d.oc2_block + ob) * d.ic2_block + ib)
            * d.ic_block + ii) * d.oc_block;
}

static void winograd_weights(const Plan& p, const float* w, float* out) {
    const dnnl_wino_desc_t& d = p.pd.weights_desc().data.format_desc.wino_desc;
    const float (*G)[3] = d.alpha == 6 ? WINO_G_4X3 : WINO_G_2X3;
    const int64_t in_c = p.user_weights.dims()[1], out_c = p.user_weights.dims()[0];
    const int alpha = d.alpha, ocb = d.oc_block, oc_blocks = d.oc / ocb;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < d.ic; i++)
        for (int ob_all = 0; ob_all < oc_blocks; ob_all++) {
            float rows[3][6][MAX_OC_BLOCK];  // w G^T: kernel row, transformed column, output channel
            for (int oo = 0; oo < ocb; oo++) {
                const int64_t o = (int64_t)ob_all * ocb + oo;
                const bool inside = i < in_c && o < out_c;
                const float* g = w + (inside ? (o * in_c + i) * 9 : 0);
                for (int r = 0; r < 3; r++)
                    for (int b = 0; b < alpha; b++)
                        rows[r][b][oo] = inside ? g[r * 3] * G[b][0] + g[r * 3 + 1] * G[b][1]
                                                  + g[r * 3 + 2] * G[b][2] : 0.f;
            }
            for (int a = 0; a < alpha; a++)
                for (int b = 0; b < alpha; b++) {
                    float* dst = out + wino_offset(d, a, b, i, ob_all);
                    for (int oo = 0; oo < ocb; oo++)
                        dst[oo] = G[a][0] * rows[0][b][oo] + G[a][1] * rows[1][b][oo] + G[a][2] * rows[2][b][oo];
                }
        }
}

// The first time a plan transforms (nonzero) weights, its own transform is checked against
// oneDNN's reorder (another oneDNN build could lay the weights out otherwise); where they
// differ by more than rounding, the plan keeps oneDNN's and says so once.
static void check_own_transform(Plan& p, memory& user_weights, memory& transformed) {
    p.transform_checked = true;
    p.weights_in.execute(cpu_stream(), user_weights, transformed);
    cpu_stream().wait();
    if (!own_transform_fits(p.pd.weights_desc())) return;
    size_t count = p.pd.weights_desc().get_size() / sizeof(float);
    std::vector<float> own(count, 0.f);
    winograd_weights(p, static_cast<const float*>(user_weights.get_data_handle()), own.data());
    const float* theirs = static_cast<const float*>(transformed.get_data_handle());
    const dnnl_wino_desc_t& d = p.pd.weights_desc().data.format_desc.wino_desc;
    double largest = 0., worst = 0.;
    for (size_t k = 0; k < (size_t)d.alpha * d.alpha * d.ic * d.oc; k++) {
        largest = std::max(largest, (double)std::fabs(theirs[k]));
        worst = std::max(worst, (double)std::fabs(theirs[k] - own[k]));
    }
    p.transform_checked = largest > 0.;  // all-zero weights show nothing: check the next ones
    p.own_transform = p.transform_checked && worst <= 1e-5 * largest;
    if (p.transform_checked && !p.own_transform)
        std::fprintf(stderr, "warning: the Winograd weight transform differs from oneDNN's (%g against %g); "
                             "using oneDNN's\n", worst, largest);
}

// Winograd weights are transformed, not only reordered. The transform is kept per (plan,
// weight buffer) and redone when the buffer's values change (training updates them every
// step; Jittor may reuse the address).
struct Transformed { std::vector<float> values; memory weights; };
static const size_t MAX_TRANSFORMED = 256;

static memory transformed_weights(Plan& p, const float* w, memory& user_weights) {
    static std::map<std::pair<const Plan*, const float*>, Transformed> cache;
    if (cache.size() >= MAX_TRANSFORMED && !cache.count({&p, w})) cache.clear();
    Transformed& entry = cache[{&p, w}];
    size_t count = p.user_weights.get_size() / sizeof(float);
    if (entry.values.size() != count || std::memcmp(entry.values.data(), w, count * sizeof(float))) {
        entry.values.assign(w, w + count);
        if (!entry.weights.get(true)) entry.weights = memory(p.pd.weights_desc(), cpu_engine());
        if (!p.transform_checked)
            check_own_transform(p, user_weights, entry.weights);
        else if (p.own_transform)
            winograd_weights(p, w, static_cast<float*>(entry.weights.get_data_handle()));
        else
            p.weights_in.execute(cpu_stream(), user_weights, entry.weights);
    }
    return entry.weights;
}

static void conv2d(const std::vector<int64_t>& key, const float* x, const float* w, const float* b, float* y) {
    Plan& p = plan_for(key);
    engine& eng = cpu_engine();
    stream& s = cpu_stream();
    memory user_src(p.user_src, eng, const_cast<float*>(x)), user_dst(p.user_dst, eng, y);
    memory user_weights(p.user_weights, eng, const_cast<float*>(w));
    memory bias(p.bias, eng, const_cast<float*>(b));
    memory weights;
    if (p.winograd) {
        weights = transformed_weights(p, w, user_weights);
    } else {
        weights = memory(p.pd.weights_desc(), eng, scratch(0, p.pd.weights_desc().get_size()));
        p.weights_in.execute(s, user_weights, weights);
    }
    memory src = user_src, dst = user_dst;
    if (p.reorder_src) {
        src = memory(p.pd.src_desc(), eng, scratch(1, p.pd.src_desc().get_size()));
        p.src_in.execute(s, user_src, src);
    }
    if (p.reorder_dst) dst = memory(p.pd.dst_desc(), eng, scratch(2, p.pd.dst_desc().get_size()));
    p.conv.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}});
    if (p.reorder_dst) p.dst_out.execute(s, dst, user_dst);
    s.wait();
}

}  // namespace sbvsr_onednn
'''

_CONV_SRC = r'''
std::vector<int64_t> key;
for (const char* name : {"n", "ic", "ih", "iw", "oc", "oh", "ow", "kh", "kw", "stride", "padding", "dilation",
                         "relu", "src_layout", "dst_layout", "winograd", "no_brgconv"})
    key.push_back((int64_t)data[name]);
sbvsr_onednn::conv2d(key, in0_p, in1_p, in2_p, out0_p);
'''

# out[n, c // 16, h * r + i, w * r + j, c % 16] = in[n, k // 16, h, w, k % 16], k = c*r*r + i*r + j
# For r = 2 the 16 channels of an output pixel are every 4th channel of 4 consecutive
# input blocks at one input pixel: two two-source permutes and a lane merge per 16 values
# (the element-wise loop below takes 6x as long at 512x360x640). Both only move values.
_PIXEL_SHUFFLE_SRC = r'''
const int64_t n = in0_shape0, in_blocks = in0_shape1, height = in0_shape2, width = in0_shape3;
const int64_t r = (int64_t)data["r"], out_blocks = out0_shape1, out_w = width * r, plane = height * width * 16;
#pragma omp parallel for collapse(2) schedule(static)
for (int64_t nb = 0; nb < n * out_blocks; nb++)
    for (int64_t oh = 0; oh < height * r; oh++) {
        const int64_t b = nb % out_blocks, h = oh / r, i = oh % r;
        const float* in_n = in0_p + (nb / out_blocks) * in_blocks * plane;
        float* out_row = out0_p + (nb * height * r + oh) * out_w * 16;
#ifdef __AVX512F__
        if (r == 2) {
            const float* in_px = in_n + b * 4 * plane + h * width * 16;
            __m512i pick[2];
            for (int64_t j = 0; j < 2; j++) {
                // output lane l < 8 is lane (l % 4) * 4 + i * 2 + j of block l / 4 (0-15: the
                // permute's first source, 16-31: its second); lanes 8-15 repeat it for blocks 2, 3
                int32_t lanes[16];
                for (int l = 0; l < 16; l++) lanes[l] = ((l % 8) / 4) * 16 + (l % 4) * 4 + (int)(i * 2 + j);
                pick[j] = _mm512_loadu_si512(lanes);
            }
            for (int64_t w = 0; w < width; w++) {
                const float* px = in_px + w * 16;
                const __m512 v0 = _mm512_loadu_ps(px), v1 = _mm512_loadu_ps(px + plane);
                const __m512 v2 = _mm512_loadu_ps(px + 2 * plane), v3 = _mm512_loadu_ps(px + 3 * plane);
                for (int64_t j = 0; j < 2; j++) {
                    const __m512 low = _mm512_permutex2var_ps(v0, pick[j], v1);
                    const __m512 high = _mm512_permutex2var_ps(v2, pick[j], v3);
                    _mm512_storeu_ps(out_row + (w * 2 + j) * 16, _mm512_shuffle_f32x4(low, high, 0x44));
                }
            }
            continue;
        }
#endif
        for (int64_t ow = 0; ow < out_w; ow++) {
            const int64_t w = ow / r, j = ow % r;
            for (int64_t cl = 0; cl < 16; cl++) {
                const int64_t k = (b * 16 + cl) * r * r + i * r + j;
                out_row[ow * 16 + cl] = in_n[(((k / 16) * height + h) * width + w) * 16 + k % 16];
            }
        }
    }
'''


# Bilinear sampling of nChw16c features at source coordinates (ix, iy), shared by every
# channel, times a per-pixel mask; taps outside the image count as 0 (Jittor's reindex
# overflow value). The tap weights are formed once per pixel, so values can differ from
# the element-wise Jittor expression by float32 rounding.
_WARP_BLOCKED_SRC = r'''
const int64_t n = in0_shape0, groups = in0_shape1, height = in0_shape2, width = in0_shape3;
const int64_t out_h = in1_shape1, out_w = in1_shape2;
#pragma omp parallel for collapse(3) schedule(static)
for (int64_t b = 0; b < n; b++)
    for (int64_t g = 0; g < groups; g++)
        for (int64_t y = 0; y < out_h; y++) {
            const float* image = in0_p + (b * groups + g) * height * width * 16;
            const int64_t row = (b * out_h + y) * out_w;
            float* out = out0_p + ((b * groups + g) * out_h + y) * out_w * 16;
            for (int64_t x = 0; x < out_w; x++) {
                const float sx = in1_p[row + x], sy = in2_p[row + x], m = in3_p[row + x];
                const int64_t fx = (int64_t)std::floor(sx), fy = (int64_t)std::floor(sy);
                const float dx = sx - fx, dy = sy - fy, dnx = fx + 1 - sx, dny = fy + 1 - sy;
                const int64_t xs[2] = {fx, fx + 1}, ys[2] = {fy, fy + 1};
                const float weights[2][2] = {{dnx * dny * m, dx * dny * m}, {dnx * dy * m, dx * dy * m}};
                float acc[16] = {0};
                for (int iy = 0; iy < 2; iy++)
                    for (int ixx = 0; ixx < 2; ixx++) {
                        if (ys[iy] < 0 || ys[iy] >= height || xs[ixx] < 0 || xs[ixx] >= width) continue;
                        const float* tap = image + (ys[iy] * width + xs[ixx]) * 16;
                        const float weight = weights[iy][ixx];
                        for (int c = 0; c < 16; c++) acc[c] += tap[c] * weight;
                    }
                for (int c = 0; c < 16; c++) out[x * 16 + c] = acc[c];
            }
        }
'''


# out[b, o, y, x] = bias[o] + the sum over taps (ky, kx) of in[b, t // 16, y + ky - 1, x + kx - 1, t % 16],
# t = (ky * 3 + kx) * c_out + o, zero outside the image: the 3x3 convolution whose per-tap partial
# sums a 1x1 convolution computed (conv3x3_few_outputs). One output row at a time, each input
# pixel's taps read once.
_TAP_SUM_SRC = r'''
const int64_t n = in0_shape0, blocks = in0_shape1, height = in0_shape2, width = in0_shape3;
const int64_t block_stride = height * width * 16;
const int c_out = (int)data["c_out"];
#pragma omp parallel for collapse(2) schedule(static)
for (int64_t b = 0; b < n; b++)
    for (int64_t y = 0; y < height; y++) {
        std::vector<float> acc(c_out * width);
        for (int o = 0; o < c_out; o++)
            std::fill(acc.begin() + o * width, acc.begin() + (o + 1) * width, in1_p[o]);
        for (int ky = 0; ky < 3; ky++) {
            const int64_t sy = y + ky - 1;
            if (sy < 0 || sy >= height) continue;
            const float* row = in0_p + b * blocks * block_stride + sy * width * 16;
            for (int kx = 0; kx < 3; kx++)
                for (int o = 0; o < c_out; o++) {
                    const int t = (ky * 3 + kx) * c_out + o;
                    const float* tap = row + (t / 16) * block_stride + t % 16 + (kx - 1) * 16;
                    float* out = acc.data() + o * width;
                    const int64_t x0 = kx == 0 ? 1 : 0, x1 = kx == 2 ? width - 1 : width;
                    for (int64_t x = x0; x < x1; x++) out[x] += tap[x * 16];
                }
        }
        for (int o = 0; o < c_out; o++)
            std::copy(acc.begin() + o * width, acc.begin() + (o + 1) * width, out0_p + ((b * c_out + o) * height + y) * width);
    }
'''


def jittor_uses_onednn():
    """True when Jittor convolves with oneDNN: on the CPU, in a build with it."""
    return not jt.flags.use_cuda and jt.compile_extern.use_mkl


def brgconv_in_use():
    """True when oneDNN convolves (CPU, Jittor built with it) and may pick brgconv."""
    return jittor_uses_onednn() and onednn_uses_brgconv()


def winograd_in_use():
    """True under --precision fast where oneDNN's AVX-512 Winograd kernel can run: conv2d
    then computes stride-1, undilated 3x3 convolutions with it (runtime.precision_fallback
    says why not otherwise)."""
    return current_precision() == 'fast' and fast_kernels_usable(jt)


def available():
    """True when these ops can run: Jittor uses oneDNN and its headers are found."""
    return jittor_uses_onednn() and _compile_flags() is not None


@functools.lru_cache(maxsize=None)
def _compile_flags():
    found = onednn_dir()
    if found is None:
        return None
    include, lib = found
    return f'FLAGS: -I"{include}" -L"{lib}" -Wl,-rpath,"{lib}" -lmkldnn '


# Below this many output pixels (batch included) a Winograd convolution spends more on its
# weights (transformed: 4x the direct kernel's to read, and to recompute after every
# optimizer step) than it saves: PWC-Net's 565->128 decoder conv of a training step takes
# 1.27 ms against 0.53 ms direct at 8x4x4 pixels, 1.9 against 1.8 at 8x8x8, 4.4 against
# 6.5 at 8x16x16 (weights changing every call).
WINOGRAD_MIN_PIXELS = 1024


def _winograd_fits(c_in, c_out, kh, kw, stride, dilation, pixels):
    """Geometries the Winograd kernel serves well: 3x3, stride 1, undilated, at least
    WINOGRAD_MIN_PIXELS output pixels, and at most a third of its work spent on the zero
    channels it pads both counts with to multiples of 16. PWC-Net's decoder convolutions
    (565->128 at 48x80: 5.3 ms against 10.7 ms direct) fit; few channels on either side do
    not (128->3 at 720x1280: 187 ms against 119 ms direct; 565->2 at 48x80: 2.4 ms against
    1.7 ms)."""
    padded = -(-c_in // BLOCK) * BLOCK * -(-c_out // BLOCK) * BLOCK
    return (kh == kw == 3 and stride == dilation == 1 and pixels >= WINOGRAD_MIN_PIXELS
            and 4 * c_in * c_out >= 3 * padded)


def shape_of(n, c, h, w, layout):
    """A Var's shape for an (N, C, H, W) tensor stored in `layout`."""
    if layout == NCHW:
        return (n, c, h, w)
    if layout == NHWC:
        return (n, h, w, c)
    if c % BLOCK:
        raise ValueError(f'{BLOCKED} needs a multiple of {BLOCK} channels, not {c}')
    return (n, c // BLOCK, h, w, BLOCK)


def nchw_dims(x, layout):
    """(N, C, H, W) of a Var stored in `layout`."""
    if layout == NCHW:
        return tuple(x.shape)
    if layout == NHWC:
        n, h, w, c = x.shape
        return n, c, h, w
    n, blocks, h, w, _ = x.shape
    return n, blocks * BLOCK, h, w


def to_layout(x, layout):
    """NCHW Var -> `layout`."""
    n, c, h, w = x.shape
    if layout == NCHW:
        return x
    if layout == NHWC:
        return x.transpose(0, 2, 3, 1)
    return x.reshape(n, c // BLOCK, BLOCK, h, w).transpose(0, 1, 3, 4, 2)


def from_layout(x, layout):
    """A Var in `layout` -> NCHW."""
    if layout == NCHW:
        return x
    if layout == NHWC:
        return x.transpose(0, 3, 1, 2)
    n, c, h, w = nchw_dims(x, layout)
    return x.transpose(0, 1, 4, 2, 3).reshape(n, c, h, w)


def conv2d(x, weight, bias, stride=1, padding=0, dilation=1, relu=False, src_layout=NCHW, dst_layout=NCHW):
    """relu?(conv2d(x, weight) + bias) for x in src_layout, output in dst_layout; weight
    (out, in, kh, kw), bias (out,); square geometry, groups 1. No gradient. Under
    winograd_in_use() a stride-1 undilated 3x3 convolution runs on the Winograd kernel
    (F(4x4, 3x3): about 1e-6 relative error against 2e-7 for the direct one)."""
    if src_layout not in LAYOUTS or dst_layout not in LAYOUTS:
        raise ValueError(f'layouts must be among {LAYOUTS}, not {src_layout!r}, {dst_layout!r}')
    n, c_in, h, w = nchw_dims(x, src_layout)
    c_out, w_in, kh, kw = weight.shape
    if w_in != c_in:
        raise ValueError(f'conv2d: the input has {c_in} channels, the weight expects {w_in}')
    out_h = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    out_w = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    if bias is None:
        bias = jt.zeros((c_out,), dtype='float32')
    fast = winograd_in_use()
    data = dict(n=n, ic=c_in, ih=h, iw=w, oc=c_out, oh=out_h, ow=out_w, kh=kh, kw=kw, stride=stride,
                padding=padding, dilation=dilation, relu=int(relu), src_layout=LAYOUTS.index(src_layout),
                dst_layout=LAYOUTS.index(dst_layout),
                winograd=int(fast and _winograd_fits(c_in, c_out, kh, kw, stride, dilation, n * out_h * out_w)),
                no_brgconv=int(fast and NHWC not in (src_layout, dst_layout)))
    y = jt.code(shape_of(n, c_out, out_h, out_w, dst_layout), 'float32', [x, weight, bias],
                cpu_header=_CONV_HEADER, cpu_src=_CONV_SRC, data=data)
    y.compile_options = {_compile_flags(): 1}
    return y


def pixel_shuffle_blocked(x, r):
    """torch.nn.PixelShuffle(r) on an nChw16c Var (C / r^2 output channels, a multiple of 16)."""
    n, c, h, w = nchw_dims(x, BLOCKED)
    if c % (r * r):
        raise ValueError(f'pixel_shuffle_blocked: {c} channels cannot be shuffled by {r}')
    return jt.code(shape_of(n, c // (r * r), h * r, w * r, BLOCKED), 'float32', [x.float32()],
                   cpu_header='#include <immintrin.h>', cpu_src=_PIXEL_SHUFFLE_SRC, data=dict(r=r))


def warp_blocked(x, ix, iy, mask):
    """Bilinear samples of the nChw16c Var x (N, G, H, W, 16) at source pixel coordinates
    ix, iy (N, H', W'; out-of-image taps count 0), times mask (N, H', W'): (N, G, H', W', 16).
    No gradient; rounding may differ from the element-wise expression by ~1 ulp."""
    n, _, _, _, block = x.shape
    if block != BLOCK or tuple(ix.shape) != tuple(iy.shape) or tuple(ix.shape) != tuple(mask.shape) \
            or ix.shape[0] != n:
        raise ValueError(f'warp_blocked: features {tuple(x.shape)} and coordinates {tuple(ix.shape)}, '
                         f'{tuple(iy.shape)}, mask {tuple(mask.shape)} do not fit')
    return jt.code((n, x.shape[1], ix.shape[1], ix.shape[2], BLOCK), 'float32',
                   [x.float32(), ix.float32(), iy.float32(), mask.float32()],
                   cpu_header='#include <cmath>', cpu_src=_WARP_BLOCKED_SRC)


def few_outputs_fit(c_in, c_out, kh, kw, stride, padding, dilation):
    """A 'same' 3x3 convolution to at most 3 channels from 16-channel blocks, which
    conv3x3_few_outputs computes: the trunk's last (128->3). oneDNN's direct kernel pads its
    outputs to 16 there, so 13 of 16 multiplications are wasted (94 ms at 720x1280)."""
    return kh == kw == 3 and stride == dilation == padding == 1 and c_out * 9 <= 2 * BLOCK and c_in % BLOCK == 0


def conv3x3_few_outputs(x, weight, bias):
    """conv2d(x, weight, bias, padding 1) of an nChw16c Var x into NCHW, for weights of at most
    3 output channels (few_outputs_fit): a 1x1 convolution gives each output channel's nine
    per-tap partial sums (27 channels, padded to 32: a matrix product oneDNN runs near its
    peak), and one pass adds the shifted taps. Sums in another order than the direct kernel
    (float32 rounding); no gradient."""
    n, c_in, h, w = nchw_dims(x, BLOCKED)
    c_out = weight.shape[0]
    taps = weight.transpose(2, 3, 0, 1).reshape(9 * c_out, c_in, 1, 1)  # channel (ky*3 + kx)*c_out + o
    taps = jt.concat([taps, jt.zeros((2 * BLOCK - 9 * c_out, c_in, 1, 1), dtype='float32')], 0)
    partial = conv2d(x, taps, None, src_layout=BLOCKED, dst_layout=BLOCKED)
    if bias is None:
        bias = jt.zeros((c_out,), dtype='float32')
    return jt.code((n, c_out, h, w), 'float32', [partial, bias.float32()],
                   cpu_header='#include <algorithm>\n#include <vector>', cpu_src=_TAP_SUM_SRC, data=dict(c_out=c_out))


class FastConv2d(jt.nn.Conv2d):
    """jt.nn.Conv2d (same parameters and state-dict keys) that, under winograd_in_use() and
    without gradients, runs on conv2d above (NCHW): PWC-Net's and the kernel net's
    convolutions at --precision fast. Jittor's own op would convolve with brgconv there and
    reorder NCHW to NHWC and back around every call. Otherwise exactly jt.nn.Conv2d."""

    def execute(self, x):
        if jt.flags.no_grad and self.groups == 1 and winograd_in_use():
            return conv2d(x, self.weight, self.bias, self.stride[0], self.padding[0], self.dilation[0])
        return super().execute(x)
