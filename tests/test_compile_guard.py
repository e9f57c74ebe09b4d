"""Jittor's op compiler runs with the graph lock of compile_guard (see its docstring)."""
import ctypes
import subprocess
import sys
import textwrap

import pytest

from jittor_self_blind_vsr.runtime import import_jittor

jt = import_jittor()

HOOK_SYMBOL = '_ZN6jittor15do_compile_hookE'  # jittor::do_compile_hook


def compile_hook_address():
    core = ctypes.CDLL(sys.modules['jittor_core'].__file__)
    return ctypes.c_void_p.in_dll(core, HOOK_SYMBOL).value


def test_every_process_compiles_through_the_graph_lock():
    assert compile_hook_address(), 'import_jittor() left Jittor without the compile hook'


def test_install_is_idempotent():
    from jittor_self_blind_vsr import compile_guard
    before = compile_hook_address()
    assert compile_guard.install(jt)
    assert compile_hook_address() == before


@pytest.mark.slow
def test_parallel_compilation_of_shared_convolutions_is_correct():
    """Forward and both backward convolutions of many geometries sharing one input and one
    weight, compiled by Jittor's compiler threads in a fresh process, against float64 torch."""
    script = textwrap.dedent('''
        import numpy as np
        import torch  # before Jittor: torch's MKL and Jittor's oneDNN clash otherwise
        from jittor_self_blind_vsr.runtime import import_jittor
        jt = import_jittor('cpu')
        assert jt.flags.use_parallel_op_compiler > 1
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 3, 11, 11)).astype('float32')
        w = rng.standard_normal((2, 3, 3, 3)).astype('float32')
        geometries = [(s, p, d) for s in (1, 2) for p in (0, 1, 2) for d in (1, 2)]

        jx, jw = jt.array(x), jt.array(w)
        total = 0
        for s, p, d in geometries:
            total = total + (jt.nn.conv2d(jx, jw, stride=s, padding=p, dilation=d) ** 2).sum()
        gx, gw = jt.grad(total, [jx, jw])

        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        expected = sum((torch.nn.functional.conv2d(tx, tw, stride=s, padding=p, dilation=d) ** 2).sum()
                       for s, p, d in geometries)
        expected.backward()
        for name, got, ref in (('loss', total.numpy(), expected.detach().numpy()),
                               ('grad_x', gx.numpy(), tx.grad.numpy()), ('grad_w', gw.numpy(), tw.grad.numpy())):
            error = float(np.abs(got - ref).max() / np.abs(ref).max())
            assert error < 1e-5, f'{name}: relative error {error:.3g}'
        print('ok')
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ['ok']


def test_start_up_leaves_subnormal_numbers_alone():
    """The guard's op library is linked with -Ofast like every Jittor op; loading it at
    start-up must not switch the process to flush-to-zero (NumPy warns and computes with 0)."""
    script = textwrap.dedent('''
        import warnings
        import numpy as np
        from jittor_self_blind_vsr.runtime import import_jittor
        import_jittor('cpu')
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            tiny = np.finfo(np.float32).smallest_subnormal
        print(float(tiny), float(np.float32(1e-45) * np.float32(1)))
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [float(v) for v in done.stdout.split()] == [float.fromhex('0x1p-149')] * 2


def test_numpy_float_limits_stay_right_after_jittor_ops_load():
    """Every op library Jittor loads switches the thread to flush-to-zero; NumPy's limits,
    computed at start-up, must not then read (and warn) that the smallest subnormal is 0."""
    script = textwrap.dedent('''
        import warnings
        import numpy as np
        from jittor_self_blind_vsr.runtime import import_jittor
        jt = import_jittor('cpu')
        (jt.array([1.0, 2.0]) * 3.25 + 0.5).sync()
        flushed = float(np.float32(1e-45) * np.float32(1))
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            limits = [np.finfo(t).smallest_subnormal for t in (np.float16, np.float32, np.float64)]
        # Bit patterns: converting a subnormal to a Python float would itself flush it.
        print(flushed, *[int(np.array(v).view(f'uint{v.nbytes * 8}')) for v in limits])
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    flushed, *limit_bits = done.stdout.split()
    assert float(flushed) == 0.0, 'a Jittor op no longer switches to flush-to-zero: this test checks nothing'
    assert limit_bits == ['1', '1', '1'], 'the smallest subnormals are not the least bit patterns'
