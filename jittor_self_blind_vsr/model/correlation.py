"""PWC-Net cost volume as one Jittor code op, with a CPU and a CUDA source side by side.

out[b, (dy+4)*9 + (dx+4), y, x] = mean_k first[b, k, y, x] * second[b, k, y+dy, x+dx]
for dy, dx in -4..4, zero where (y+dy, x+dx) falls outside the map. The original has
only cupy kernels; the CPU path here is what makes the model run without a GPU.

Both paths compute the gradients by gathering (no atomics), so they are deterministic.
The CPU path works on whole image rows, parallel over (batch, row) with OpenMP (Jittor
compiles code ops with -fopenmp): each task writes only its own output rows, and the
inner loops run over contiguous x so the compiler vectorises them. Shapes are runtime
arguments of a code op, so each source compiles once per dtype, not once per shape.
"""
import jittor as jt

MAX_DISPLACEMENT = 4
SPAN = 2 * MAX_DISPLACEMENT + 1
CHANNELS = SPAN * SPAN

_CPU_HEADER = r'''
#include <algorithm>
#include <cstdint>

namespace sbvsr_corr {

// Range of x for which x + shift stays inside [0, width).
static inline void valid_range(int64_t width, int64_t shift, int64_t& begin, int64_t& end) {
    begin = std::max<int64_t>(0, -shift);
    end = std::min<int64_t>(width, width - shift);
}

template <typename T>
static void forward(const T* first, const T* second, T* volume,
                    int64_t batch, int64_t chans, int64_t height, int64_t width) {
    const int64_t plane = height * width;
    const T scale = T(1) / T(chans);
    #pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < batch * height; task++) {
        const int64_t b = task / height, y = task % height;
        const T* first_b = first + b * chans * plane;
        const T* second_b = second + b * chans * plane;
        T* volume_by = volume + b * 81 * plane + y * width;
        for (int c = 0; c < 81; c++)
            std::fill(volume_by + c * plane, volume_by + c * plane + width, T(0));
        for (int dy = -4; dy <= 4; dy++) {
            const int64_t ys = y + dy;
            if (ys < 0 || ys >= height) continue;
            for (int64_t k = 0; k < chans; k++) {
                const T* __restrict__ f_row = first_b + k * plane + y * width;
                const T* __restrict__ s_row = second_b + k * plane + ys * width;
                for (int dx = -4; dx <= 4; dx++) {
                    T* __restrict__ v_row = volume_by + ((dy + 4) * 9 + dx + 4) * plane;
                    int64_t x0, x1;
                    valid_range(width, dx, x0, x1);
                    for (int64_t x = x0; x < x1; x++)
                        v_row[x] += f_row[x] * s_row[x + dx];
                }
            }
        }
        for (int c = 0; c < 81; c++) {
            T* __restrict__ v_row = volume_by + c * plane;
            for (int64_t x = 0; x < width; x++) v_row[x] *= scale;
        }
    }
}

// grad_first[k, y, x]  = mean over d of grad[d, y, x] * second[k, y+dy, x+dx]
// grad_second[k, y, x] = mean over d of grad[d, y-dy, x-dx] * first[k, y-dy, x-dx]
template <typename T>
static void backward(const T* first, const T* second, const T* grad,
                     T* grad_first, T* grad_second,
                     int64_t batch, int64_t chans, int64_t height, int64_t width) {
    const int64_t plane = height * width;
    const T scale = T(1) / T(chans);
    #pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < batch * height; task++) {
        const int64_t b = task / height, y = task % height;
        const T* first_b = first + b * chans * plane;
        const T* second_b = second + b * chans * plane;
        const T* grad_b = grad + b * 81 * plane;
        for (int64_t k = 0; k < chans; k++) {
            T* __restrict__ gf_row = grad_first + (b * chans + k) * plane + y * width;
            T* __restrict__ gs_row = grad_second + (b * chans + k) * plane + y * width;
            std::fill(gf_row, gf_row + width, T(0));
            std::fill(gs_row, gs_row + width, T(0));
            for (int dy = -4; dy <= 4; dy++) {
                const int64_t ys = y + dy;
                if (ys >= 0 && ys < height) {
                    const T* __restrict__ s_row = second_b + k * plane + ys * width;
                    for (int dx = -4; dx <= 4; dx++) {
                        const T* __restrict__ g_row = grad_b + ((dy + 4) * 9 + dx + 4) * plane + y * width;
                        int64_t x0, x1;
                        valid_range(width, dx, x0, x1);
                        for (int64_t x = x0; x < x1; x++)
                            gf_row[x] += g_row[x] * s_row[x + dx];
                    }
                }
                const int64_t yg = y - dy;
                if (yg >= 0 && yg < height) {
                    const T* __restrict__ f_row = first_b + k * plane + yg * width;
                    for (int dx = -4; dx <= 4; dx++) {
                        const T* __restrict__ g_row = grad_b + ((dy + 4) * 9 + dx + 4) * plane + yg * width;
                        int64_t x0, x1;
                        valid_range(width, -dx, x0, x1);
                        for (int64_t x = x0; x < x1; x++)
                            gs_row[x] += g_row[x - dx] * f_row[x - dx];
                    }
                }
            }
            for (int64_t x = 0; x < width; x++) {
                gf_row[x] *= scale;
                gs_row[x] *= scale;
            }
        }
    }
}

}  // namespace sbvsr_corr
'''

_CPU_FORWARD = r'''
sbvsr_corr::forward<in0_type>(in0_p, in1_p, out0_p, in0_shape0, in0_shape1, in0_shape2, in0_shape3);
'''

_CPU_BACKWARD = r'''
sbvsr_corr::backward<in0_type>(in0_p, in1_p, in2_p, out0_p, out1_p,
                               in0_shape0, in0_shape1, in0_shape2, in0_shape3);
'''

_CUDA_HEADER = r'''
#include <cstdint>

namespace sbvsr_corr {

static inline int blocks_for(int64_t n, int threads) {
    const int64_t blocks = (n + threads - 1) / threads;
    return (int)(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

// One thread per output element (b, d, y, x), summing over the channels.
template <typename T>
__global__ void forward_kernel(const T* __restrict__ first, const T* __restrict__ second,
                               T* __restrict__ volume,
                               int64_t batch, int64_t chans, int64_t height, int64_t width) {
    const int64_t total = batch * 81 * height * width;
    const int64_t plane = height * width;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)blockDim.x * gridDim.x) {
        const int64_t x = i % width;
        const int64_t y = (i / width) % height;
        const int d = (int)((i / plane) % 81);
        const int64_t b = i / (81 * plane);
        const int64_t ys = y + d / 9 - 4, xs = x + d % 9 - 4;
        T acc = T(0);
        if (ys >= 0 && ys < height && xs >= 0 && xs < width) {
            const T* f = first + b * chans * plane + y * width + x;
            const T* s = second + b * chans * plane + ys * width + xs;
            for (int64_t k = 0; k < chans; k++)
                acc += f[k * plane] * s[k * plane];
        }
        volume[i] = acc / T(chans);
    }
}

// One thread per input element (b, k, y, x), gathering over the 81 displacements,
// so both gradients are written without atomics.
template <typename T>
__global__ void backward_kernel(const T* __restrict__ first, const T* __restrict__ second,
                                const T* __restrict__ grad,
                                T* __restrict__ grad_first, T* __restrict__ grad_second,
                                int64_t batch, int64_t chans, int64_t height, int64_t width) {
    const int64_t total = batch * chans * height * width;
    const int64_t plane = height * width;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)blockDim.x * gridDim.x) {
        const int64_t x = i % width;
        const int64_t y = (i / width) % height;
        const int64_t bk = i / plane;
        const int64_t b = bk / chans;
        const T* grad_b = grad + b * 81 * plane;
        const T* first_bk = first + bk * plane;
        const T* second_bk = second + bk * plane;
        T acc_first = T(0), acc_second = T(0);
        for (int d = 0; d < 81; d++) {
            const int dy = d / 9 - 4, dx = d % 9 - 4;
            const int64_t ys = y + dy, xs = x + dx;
            if (ys >= 0 && ys < height && xs >= 0 && xs < width)
                acc_first += grad_b[d * plane + y * width + x] * second_bk[ys * width + xs];
            const int64_t yg = y - dy, xg = x - dx;
            if (yg >= 0 && yg < height && xg >= 0 && xg < width)
                acc_second += grad_b[d * plane + yg * width + xg] * first_bk[yg * width + xg];
        }
        grad_first[i] = acc_first / T(chans);
        grad_second[i] = acc_second / T(chans);
    }
}

}  // namespace sbvsr_corr
'''

_CUDA_FORWARD = r'''
{
    const int64_t total = in0_shape0 * 81 * in0_shape2 * in0_shape3;
    sbvsr_corr::forward_kernel<in0_type><<<sbvsr_corr::blocks_for(total, 256), 256>>>(
        in0_p, in1_p, out0_p, in0_shape0, in0_shape1, in0_shape2, in0_shape3);
}
'''

_CUDA_BACKWARD = r'''
{
    const int64_t total = in0_shape0 * in0_shape1 * in0_shape2 * in0_shape3;
    sbvsr_corr::backward_kernel<in0_type><<<sbvsr_corr::blocks_for(total, 256), 256>>>(
        in0_p, in1_p, in2_p, out0_p, out1_p, in0_shape0, in0_shape1, in0_shape2, in0_shape3);
}
'''


class _Correlation(jt.Function):
    def execute(self, first, second):
        self.inputs = (first, second)
        batch, _, height, width = first.shape
        return jt.code((batch, CHANNELS, height, width), first.dtype, [first, second],
                       cpu_header=_CPU_HEADER, cpu_src=_CPU_FORWARD,
                       cuda_header=_CUDA_HEADER, cuda_src=_CUDA_FORWARD)

    def grad(self, grad_volume):
        if grad_volume is None:
            return None, None
        first, second = self.inputs
        return jt.code([first.shape, second.shape], [first.dtype, first.dtype],
                       [first, second, grad_volume.cast(first.dtype)],
                       cpu_header=_CPU_HEADER, cpu_src=_CPU_BACKWARD,
                       cuda_header=_CUDA_HEADER, cuda_src=_CUDA_BACKWARD)


def correlation(first, second):
    """Cost volume of two (B, C, H, W) maps: (B, 81, H, W), channel (dy+4)*9 + (dx+4)."""
    if first.ndim != 4 or tuple(first.shape) != tuple(second.shape):
        raise ValueError(f'correlation needs two (B, C, H, W) maps of one shape, '
                         f'got {tuple(first.shape)} and {tuple(second.shape)}')
    return _Correlation.apply(first, second.cast(first.dtype))
