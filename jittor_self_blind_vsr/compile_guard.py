"""Serialise the graph work of Jittor's parallel op compiler; the C++ compiler runs stay parallel.

Jittor compiles the ops of a new graph in several threads (`use_parallel_op_compiler`,
up to 16). Each thread generates its op's source and runs Jittor's tuners on it, and the
convolution tuner relays a fused op to `mkl_conv*` (how jt.nn.conv2d reaches oneDNN) by
creating a new op on Vars of the shared graph, breadth-first searching from it with the
global node marks, and re-linking its inputs (`VarRelayManager::add_relay_group`). Two
threads doing that on convolutions that share a Var (a forward conv and its two backward
convs always do) edit the same Var's output list and node marks with no lock: now and then
a compiler thread segfaults in `VarRelayManager::get_relay_src`, and the process can hang
in its exit handlers. Compiling in one thread (`use_parallel_op_compiler=0`) avoids it but
halves cold-cache compile speed, since the C++ compiler runs are what takes the time.

Jittor sends every op compilation through `jittor::do_compile_hook` when that is set. The
hook installed here does what Jittor's own `do_compile_inner` does, in the same order, but
holds one mutex while the source is generated, passed and tuned (the part that touches
the graph, milliseconds per op), and releases it for `OpCompiler::compile`, the cache
look-up and C++ compiler run.
"""
import numpy as np

_HEADER = r'''
#include <memory>
#include <mutex>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif
#include "op.h"
#include "op_compiler.h"
#include "opt/tuner_manager.h"
#include "ops/op_register.h"

namespace jittor {
extern jit_op_entry_t (*do_compile_hook)(Op*);

namespace sbvsr_compile_guard {
static std::mutex graph_lock;

static jit_op_entry_t compile_with_graph_lock(Op* op) {
    std::unique_ptr<OpCompiler> oc;
    string src, jit_key;
    {
        std::lock_guard<std::mutex> guard(graph_lock);
        oc.reset(new OpCompiler(op));
        for (auto op_type : op_types)
            op_type->post_pass(oc.get());
        src = oc->src;
        if (oc->op) {
            TunerManager tm(oc.get());
            src = tm.tune();
        }
        op->compile_optimize(src);
        jit_key = op->get_jit_key(get_jk());
    }
    return oc->compile(jit_key, src);
}

static int installed = (do_compile_hook = compile_with_graph_lock, 1);

// Jittor links its op libraries with -Ofast, so loading one sets the CPU's flush-to-zero
// and denormals-are-zero modes for the whole process. Jittor's own ops load when first
// run; this one loads at start-up, so it puts back the IEEE modes the process had (NumPy
// warns about, and computes with, flushed subnormals otherwise).
static void restore_ieee_denormals() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() & ~0x8040u);
#endif
}
}
}
'''


def install(jt):
    """Set Jittor's compile hook in this process (idempotent); True when it is set.

    The hook lives in a small CPU op: loading the op's library runs its initialiser."""
    with jt.flag_scope(use_cuda=0):
        marker = jt.code([1], 'int32', [], cpu_header=_HEADER,
                         cpu_src='jittor::sbvsr_compile_guard::restore_ieee_denormals();'
                                 '@out(0) = jittor::sbvsr_compile_guard::installed;')
        installed = int(marker.item()) == 1
    cache_float_limits()
    return installed


def cache_float_limits():
    """Have NumPy compute its float types' limits now, while the process has IEEE subnormals.

    The next Jittor op library to load switches the thread to flush-to-zero again, for good,
    which is how Jittor computes. NumPy works out a type's limits the first time they are
    asked for and caches them; asked after that switch, it warns that the smallest
    subnormal is zero (matplotlib asks when the trainer plots its curves)."""
    for float_type in (np.float16, np.float32, np.float64):
        np.finfo(float_type)
