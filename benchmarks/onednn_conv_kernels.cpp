// One 128->128 3x3 convolution (bias, fused ReLU) on oneDNN 2.2, the library Jittor links:
// the kernel oneDNN picks for an algorithm and data type, its time and its error against a
// float64 reference on 2,000 random outputs. docs/model.md ("Precision") quotes it.
//
//   D=$(python -c "from jittor_self_blind_vsr.runtime import onednn_dir; print(onednn_dir()[1].parent)")
//   g++ -O2 -fopenmp benchmarks/onednn_conv_kernels.cpp -I$D/include -L$D/lib -Wl,-rpath,$D/lib -ldnnl -o /tmp/conv
//   DNNL_MAX_CPU_ISA=ALL /tmp/conv wino 180 320 10     # direct | wino | auto | bf16 | bf16f32, H, W, repeats
//
// direct/wino/auto: float32 with algorithm convolution_direct/_winograd/_auto; bf16: source,
// weights and output in bfloat16; bf16f32: bfloat16 inputs, float32 output.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
#include <cmath>
#include <random>
#include "dnnl.hpp"
using namespace dnnl;
using tag = memory::format_tag; using dt = memory::data_type;
int main(int argc, char** argv) {
  const char* mode = argv[1]; int H = atoi(argv[2]), W = atoi(argv[3]); int reps = atoi(argv[4]);
  int C = 128;
  engine eng(engine::kind::cpu, 0); stream s(eng);
  memory::dims src{1, C, H, W}, wd{C, C, 3, 3}, dst{1, C, H, W};
  algorithm alg = algorithm::convolution_direct; dt sdt = dt::f32, wdt = dt::f32, ddt = dt::f32;
  if (!strcmp(mode, "wino")) alg = algorithm::convolution_winograd;
  if (!strcmp(mode, "auto")) alg = algorithm::convolution_auto;
  if (!strcmp(mode, "bf16")) { sdt = wdt = dt::bf16; ddt = dt::bf16; }
  if (!strcmp(mode, "bf16f32")) { sdt = wdt = dt::bf16; ddt = dt::f32; }
  convolution_forward::desc d(prop_kind::forward_inference, alg, memory::desc(src, sdt, tag::any),
      memory::desc(wd, wdt, tag::any), memory::desc({C}, dt::f32, tag::x), memory::desc(dst, ddt, tag::any),
      {1,1},{0,0},{1,1},{1,1});
  primitive_attr attr; post_ops ops; ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f); attr.set_post_ops(ops);
  convolution_forward::primitive_desc pd(d, attr, eng);
  printf("impl %s\n", pd.impl_info_str());
  // fp32 user data
  std::mt19937 g(0); std::normal_distribution<float> nd;
  std::vector<float> x(C*H*W), w(C*C*9), b(C), y(C*H*W), yref;
  for (auto& v: x) v = nd(g); for (auto& v: w) v = nd(g)/sqrt(C*9.f); for (auto& v: b) v = 0.01f*nd(g);
  memory ux({src, dt::f32, tag::nchw}, eng, x.data()), uw({wd, dt::f32, tag::oihw}, eng, w.data()),
         ub({{C}, dt::f32, tag::x}, eng, b.data()), uy({dst, dt::f32, tag::nchw}, eng, y.data());
  memory ms(pd.src_desc(), eng), mw(pd.weights_desc(), eng), md(pd.dst_desc(), eng);
  reorder(ux, ms).execute(s, ux, ms); reorder(uw, mw).execute(s, uw, mw);
  convolution_forward conv(pd);
  conv.execute(s, {{DNNL_ARG_SRC, ms},{DNNL_ARG_WEIGHTS, mw},{DNNL_ARG_BIAS, ub},{DNNL_ARG_DST, md}}); s.wait();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; i++) conv.execute(s, {{DNNL_ARG_SRC, ms},{DNNL_ARG_WEIGHTS, mw},{DNNL_ARG_BIAS, ub},{DNNL_ARG_DST, md}});
  s.wait();
  double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  reorder(md, uy).execute(s, md, uy); s.wait();
  // fp64 reference on a few points
  double err = 0, ref2 = 0; int n = 0;
  for (int k = 0; k < 2000; k++) { int o = g() % C, h = g() % H, ww = g() % W; double acc = b[o];
    for (int c = 0; c < C; c++) for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) { int hh = h+i-1, w2 = ww+j-1;
      if (hh<0||hh>=H||w2<0||w2>=W) continue; acc += (double)x[(c*H+hh)*W+w2]*w[((o*C+c)*3+i)*3+j]; }
    acc = acc > 0 ? acc : 0; double e = y[(o*H+h)*W+ww] - acc; err += e*e; ref2 += acc*acc; n++; }
  printf("%s %dx%d: %.2f ms  %.0f GFLOP/s  rel rms err %.2e\n", mode, H, W, t*1e3, 2.0*C*C*9*H*W/t/1e9, sqrt(err/ref2));
}
