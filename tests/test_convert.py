"""The converter CLI: torch files of both formats -> .pkl the Jittor model loads, with or without torch.

Seeded full-configuration weights (fixture README recipe) saved by torch.save in both
formats convert to exactly those weights, with which PWC_Recons reproduces
full_config.npz; the same files convert identically in processes where importing torch
fails. Bad input gets one sentence on stderr, exit status 1 and no output file.
"""
import collections
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jittor_self_blind_vsr.convert_pytorch_to_jittor import main
from jittor_self_blind_vsr.utils.checkpoint import FLOW_PREFIX, load_state_dict_file, save_pickle_atomic
from conftest import parity_file
from interrupting import signal_when_ready, snapshot
from parity_weights import seeded_state
from test_checkpoint import _strided_zip, billion_laughs, replace_data_pkl

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'jittor_self_blind_vsr'
FULL_CONFIG_LINE = ('Inferred configuration: n_colors=3, n_sequence=5, n_feat=128, extra_RBS=3, recons_RBS=20, '
                    'kernel_size=3, scale=4, ksize=13, flow=pwc')


def torch_state(state, prefix=''):
    return collections.OrderedDict((prefix + k, torch.from_numpy(v)) for k, v in state.items())


def save_torch(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == 'zip'))
    return path


def read_pkl(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def assert_same_state(got, want):
    assert list(got) == list(want)
    for key, value in want.items():
        assert got[key].dtype == np.float32 and np.array_equal(got[key], value), key


def convert(pt, out):
    return main(['--pytorch_model', str(pt), '--jittor_model', str(out)])


@pytest.fixture(scope='module')
def full_state():
    return seeded_state(parity_file('full_config_keys.tsv'), seed=1)


@pytest.fixture(scope='module')
def small_state():
    return seeded_state(parity_file('small_config_keys.tsv'), seed=0)


@pytest.fixture(scope='module')
def full_files(full_state, tmp_path_factory):
    """The seeded published-layout weights as torch.save writes them (PyTorch 0.4.1 used the legacy format)."""
    folder = tmp_path_factory.mktemp('full')
    weights = torch_state(full_state)
    return {fmt: save_torch(weights, folder / f'model_{fmt}.pt', fmt) for fmt in ('legacy', 'zip')}


@pytest.fixture(scope='module')
def converted(full_files, tmp_path_factory):
    """Both files converted in this process (torch importable); also returns the report."""
    folder = tmp_path_factory.mktemp('converted')
    outputs = {}
    for fmt, pt in full_files.items():
        outputs[fmt] = folder / f'{fmt}.pkl'
        assert convert(pt, outputs[fmt]) == 0
    return outputs


def test_both_formats_convert_to_exactly_the_seeded_weights(converted, full_state, full_files, tmp_path, capsys):
    for fmt in ('legacy', 'zip'):
        assert_same_state(read_pkl(converted[fmt]), full_state)
    assert converted['legacy'].read_bytes() == converted['zip'].read_bytes()
    assert convert(full_files['legacy'], tmp_path / 'again.pkl') == 0
    report = capsys.readouterr().out.splitlines()
    assert report == [f'Read {full_files["legacy"]}: PyTorch legacy format (PyTorch <= 1.5)',
                      'Self-Blind-VSR weights: 272 tensors, 18,900,215 values, every one checked against the '
                      'Jittor model',
                      FULL_CONFIG_LINE,
                      f'Wrote {tmp_path / "again.pkl"}']


def test_converted_weights_reproduce_the_original(converted):
    """full_config.npz aligned/infer: recons within 1e-3 (mean 1e-4 of its scale), est_kernel within 1e-6."""
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    from jittor_self_blind_vsr.runtime import import_jittor
    jt = import_jittor()
    ref = np.load(parity_file('full_config.npz'))
    net = PWC_Recons(n_feat=128, extra_RBS=3, recons_RBS=20, align_corners=True)
    net.load_numpy_state_dict(load_state_dict_file(converted['legacy']))
    net.eval()
    with jt.no_grad():
        out, _ = net({'x': jt.array(ref['x']), 'mode': 'infer'})
    recons_err = np.abs(out['recons'].numpy() - ref['aligned/infer/recons'])
    kernel_err = np.abs(out['est_kernel'].numpy() - ref['aligned/infer/est_kernel'])
    scale = max(1.0, float(np.abs(ref['aligned/infer/recons']).mean()))  # as test_model_parity.py
    assert recons_err.max() <= 1e-3 and recons_err.mean() <= 1e-4 * scale, (recons_err.max(), recons_err.mean())
    assert kernel_err.max() <= 1e-6, kernel_err.max()


@pytest.fixture(scope='module')
def no_torch_env(tmp_path_factory):
    """Environment in which `import torch` fails, as on a machine without the convert extra."""
    blocker = tmp_path_factory.mktemp('no_torch')
    (blocker / 'torch.py').write_text("raise ImportError('torch is not installed here')\n")
    # the checkout under test stands for the installed package the launchers import
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]), log_silent='1')
    probe = subprocess.run([sys.executable, '-c', 'import torch'], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and 'torch is not installed here' in probe.stderr
    return env


LAUNCHER = (sys.executable, 'convert/convert_pytorch_to_jittor.py')


def run_cli(args, env, cwd=REPO, command=LAUNCHER):
    return subprocess.run([*command, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_without_torch_every_launcher_gives_identical_output(full_files, converted, no_torch_env, tmp_path):
    """Repository launcher, the module run from inside the package, and the console script."""
    runs = {
        'legacy': (REPO, LAUNCHER),
        'zip': (PACKAGE, (sys.executable, 'convert_pytorch_to_jittor.py')),
    }
    for fmt, (cwd, command) in runs.items():
        out = tmp_path / f'{fmt}.pkl'
        done = run_cli(['--pytorch_model', full_files[fmt], '--jittor_model', out], no_torch_env, cwd, command)
        assert done.returncode == 0, done.stderr
        assert FULL_CONFIG_LINE in done.stdout
        assert out.read_bytes() == converted[fmt].read_bytes()
    script = Path(sys.executable).with_name('sbvsr-convert')
    out = tmp_path / 'script.pkl'
    done = run_cli(['--pytorch_model', full_files['zip'], '--jittor_model', out], no_torch_env,
                   command=(str(script),))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == converted['zip'].read_bytes()


PWC_VARIANTS = {
    # name: (naming, key prefix, nesting key, torch format)
    'original_pytorch-pwc': ('module', '', None, 'legacy'),
    'newer_pytorch-pwc': ('net', '', None, 'zip'),
    'flow_pwc_module': ('module', 'moduleNetwork.', None, 'zip'),
    'data_parallel_nested': ('net', 'module.', 'state_dict', 'legacy'),
}


@pytest.mark.parametrize('variant', list(PWC_VARIANTS))
def test_pwc_net_files(variant, full_state, tmp_path, capsys):
    naming, prefix, nest, fmt = PWC_VARIANTS[variant]
    flow = {k[len(FLOW_PREFIX):]: v for k, v in full_state.items() if k.startswith(FLOW_PREFIX)}
    weights = collections.OrderedDict((prefix + k.replace('module', naming), torch.from_numpy(v))
                                      for k, v in flow.items())
    pt = save_torch({nest: weights} if nest else weights, tmp_path / 'network-default.pytorch', fmt)
    assert convert(pt, tmp_path / 'pwc.pkl') == 0
    assert_same_state(read_pkl(tmp_path / 'pwc.pkl'), {FLOW_PREFIX + k: v for k, v in flow.items()})
    report = capsys.readouterr().out
    assert 'PWC-Net optical-flow weights: 126 tensors, 9,374,274 values' in report
    assert f'Keys written under {FLOW_PREFIX}' in report


def test_flow_pwc_starts_from_a_converted_or_raw_pwc_net_file(full_state, tmp_path):
    """What main.py passes as flow_pretrain_fn: network-default.pkl (converted) or the .pytorch itself."""
    from jittor_self_blind_vsr.model import numpy_state_dict
    from jittor_self_blind_vsr.model.flow_pwc import Flow_PWC
    flow = {k[len(FLOW_PREFIX):]: v for k, v in full_state.items() if k.startswith(FLOW_PREFIX)}
    raw = save_torch(torch_state(flow), tmp_path / 'network-default.pytorch', 'legacy')
    assert convert(raw, tmp_path / 'network-default.pkl') == 0
    for path in (raw, tmp_path / 'network-default.pkl'):
        assert load_state_dict_file(path).keys() == flow.keys()
        assert_same_state(numpy_state_dict(Flow_PWC(pretrain_fn=str(path)).moduleNetwork), flow)


def test_flow_pwc_starts_from_a_full_checkpoint_and_refuses_a_foreign_file(full_state, tmp_path):
    """A full Self-Blind-VSR .pkl gives Flow_PWC its flow part; a file of other weights is
    refused in one sentence naming the first keys, not a list of all ~126."""
    from jittor_self_blind_vsr.model import numpy_state_dict
    from jittor_self_blind_vsr.model.flow_pwc import Flow_PWC
    from jittor_self_blind_vsr.utils.checkpoint import CheckpointError
    flow = {k[len(FLOW_PREFIX):]: v for k, v in full_state.items() if k.startswith(FLOW_PREFIX)}
    save_pickle_atomic(full_state, tmp_path / 'full.pkl')
    assert_same_state(numpy_state_dict(Flow_PWC(pretrain_fn=str(tmp_path / 'full.pkl')).moduleNetwork), flow)
    foreign = dict(flow)
    foreign['moduleExtractor.moduleOne.0.weight'] = np.zeros((16, 3, 5, 5), np.float32)
    save_pickle_atomic(foreign, tmp_path / 'foreign.pkl')
    with pytest.raises(CheckpointError) as err:
        Flow_PWC(pretrain_fn=str(tmp_path / 'foreign.pkl'))
    message = str(err.value)
    assert 'moduleExtractor.moduleOne.0.weight' in message and '\n' not in message
    assert len(message) < 400


SMALL_CONFIG_LINE = ('Inferred configuration: n_colors=3, n_sequence=5, n_feat=32, extra_RBS=1, recons_RBS=2, '
                     'kernel_size=3, scale=4, ksize=13, flow=pwc')


def test_our_trainer_checkpoint(small_state, tmp_path, capsys):
    state = {'version': 1, 'epoch': 7, 'model': small_state,
             'optimizer': {'n_step': 70, 'm': {k: np.zeros_like(v) for k, v in small_state.items()}},
             'logs': {'psnr': [25.0, 25.5]}}
    save_pickle_atomic(state, tmp_path / 'state.pkl')
    assert convert(tmp_path / 'state.pkl', tmp_path / 'model.pkl') == 0
    assert_same_state(read_pkl(tmp_path / 'model.pkl'), small_state)
    assert SMALL_CONFIG_LINE in capsys.readouterr().out


def test_torch_trainer_checkpoint_with_data_parallel_keys(small_state, tmp_path, capsys):
    checkpoint = {'epoch': 7, 'model_state_dict': torch_state(small_state, 'module.'),
                  'optimizer_state_dict': {'state': {}, 'param_groups': [{'lr': 1e-4, 'params': [0, 1]}]}}
    pt = save_torch(checkpoint, tmp_path / 'checkpoint.pt', 'zip')
    assert convert(pt, tmp_path / 'model.pkl') == 0
    assert_same_state(read_pkl(tmp_path / 'model.pkl'), small_state)
    assert SMALL_CONFIG_LINE in capsys.readouterr().out


@pytest.mark.parametrize('config', [
    dict(n_colors=3, n_sequence=5, n_feat=32, extra_RBS=1, recons_RBS=2, kernel_size=3, scale=4, ksize=13),
    dict(n_colors=1, n_sequence=3, n_feat=16, extra_RBS=0, recons_RBS=4, kernel_size=5, scale=2, ksize=9),
    dict(n_colors=3, n_sequence=7, n_feat=8, extra_RBS=2, recons_RBS=1, kernel_size=3, scale=8, ksize=15),
])
def test_configuration_is_inferred_from_shapes(config):
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    from jittor_self_blind_vsr.model.specification import config_from_state_dict
    shapes = {k: np.empty(tuple(v.shape), np.float32) for k, v in PWC_Recons(**config).state_dict().items()}
    assert config_from_state_dict(shapes) == dict(config, flow='pwc')


def test_a_model_without_flow_weights_is_inferred_as_a_dis_model():
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    from jittor_self_blind_vsr.model.specification import config_from_state_dict
    config = dict(n_colors=3, n_sequence=5, n_feat=16, extra_RBS=1, recons_RBS=1, kernel_size=3, scale=4, ksize=13,
                  flow='dis')
    shapes = {k: np.empty(tuple(v.shape), np.float32) for k, v in PWC_Recons(**config).state_dict().items()}
    assert config_from_state_dict(shapes) == config


# ---------------------------------------------------------------- bad input

def assert_refused(code, stderr, out, pattern):
    lines = stderr.strip().splitlines()
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith('sbvsr-convert: ') and not lines[0].endswith('.'), stderr
    assert 'Traceback' not in stderr
    assert pattern in lines[0], lines[0]
    assert not out.exists()
    assert [p.name for p in out.parent.glob('.*.tmp')] == []


def _small_pt(small_state, folder, fmt='legacy'):
    return save_torch(torch_state(small_state), folder / f'small_{fmt}.pt', fmt)


def _evil_pkl(folder, marker):
    class RunsCommand:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)
    path = folder / 'evil.pkl'
    path.write_bytes(pickle.dumps({'in_conv.0.weight': RunsCommand()}))
    return path


def _evil_torch(folder, marker, fmt):
    class RunsCommand:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)
    return save_torch({'in_conv.0.weight': RunsCommand()}, folder / f'evil_{fmt}.pt', fmt)


def _truncated(small_state, folder, fmt):
    data = _small_pt(small_state, folder, fmt).read_bytes()
    path = folder / f'cut_{fmt}.pt'
    path.write_bytes(data[:len(data) // 2])
    return path


BAD_INPUTS = {
    'missing_file': (lambda s, d, m: d / 'nowhere.pt', 'nowhere.pt does not exist'),
    'a_folder': (lambda s, d, m: d, 'is a folder, not a checkpoint file'),
    'not_a_checkpoint': (lambda s, d, m: _write(d / 'notes.pt', b'just some text\n'),
                         'is not a checkpoint (neither a PyTorch file nor a pickle)'),
    'truncated_legacy': (lambda s, d, m: _truncated(s, d, 'legacy'), 'is truncated or corrupt'),
    'truncated_zip': (lambda s, d, m: _truncated(s, d, 'zip'), 'is truncated or corrupt'),
    'no_weights': (lambda s, d, m: save_torch({'epoch': 3, 'lr': 1e-4}, d / 'opt.pt', 'zip'),
                   "holds no model weights (neither a dict of tensors nor one under 'state_dict', "
                   "'model_state_dict', 'model')"),
    'malicious_pkl': (lambda s, d, m: _evil_pkl(d, m), 'refers to posix.system, which no checkpoint holds'),
    'malicious_legacy': (lambda s, d, m: _evil_torch(d, m, 'legacy'), 'refers to posix.system'),
    'malicious_zip': (lambda s, d, m: _evil_torch(d, m, 'zip'), 'refers to posix.system'),
    'billion_laughs': (lambda s, d, m: replace_data_pkl(save_torch({'w': torch.ones(2)}, d / 'laughs.pt', 'zip'),
                                                        billion_laughs(40)),
                       'is refused: its shared references unfold into more than'),
    'stride_zero_view': (lambda s, d, m: _strided_zip(d / 'stride0.pt', (1 << 20, 1 << 20), (0, 0)),
                         'is refused: its tensor w would hold 1,099,511,627,776 values, but its storage holds '
                         'only 1'),
}


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize('case', list(BAD_INPUTS))
def test_bad_input_one_sentence_exit_1_no_output(case, small_state, tmp_path, no_torch_env):
    make, pattern = BAD_INPUTS[case]
    marker = tmp_path / 'command_ran'
    source = make(small_state, tmp_path, marker)
    out = tmp_path / 'out' / 'model.pkl'
    out.parent.mkdir()
    done = run_cli(['--pytorch_model', source, '--jittor_model', out], no_torch_env)
    assert_refused(done.returncode, done.stderr, out, pattern)
    assert done.stdout == ''
    assert not marker.exists()


def test_missing_output_folder(small_state, tmp_path, no_torch_env):
    out = tmp_path / 'no' / 'such' / 'model.pkl'
    done = run_cli(['--pytorch_model', _small_pt(small_state, tmp_path), '--jittor_model', out], no_torch_env)
    assert_refused(done.returncode, done.stderr, out, f'the folder {out.parent} does not exist')


def _resnet_like():
    return collections.OrderedDict([('conv1.weight', np.zeros((64, 3, 7, 7), np.float32)),
                                    ('bn1.weight', np.ones(64, np.float32)),
                                    ('bn1.bias', np.zeros(64, np.float32)),
                                    ('fc.weight', np.zeros((10, 64), np.float32))])


MODEL_MISMATCHES = {
    'another_architecture': (lambda s: _resnet_like(),
                             'is not a Self-Blind-VSR or PWC-Net checkpoint: its keys conv1.weight, bn1.weight, '
                             'bn1.bias (and 1 more) do not fit the model'),
    'extra_keys': (lambda s: {**s, 'head.weight': np.zeros(3, np.float32)},
                   'does not fit the model: its keys head.weight are not in the model'),
    'shape_mismatch': (lambda s: {**s, 'fusion_conv.0.bias': np.zeros(33, np.float32)},
                       'fusion_conv.0.bias has shape 33 in the file but 32 in the model'),
    'missing_tensor': (lambda s: {k: v for k, v in s.items() if k != 'out_conv.1.bias'},
                       "it lacks 1 of the model's tensors, first out_conv.1.bias"),
    'impossible_configuration': (lambda s: {**s, 'in_conv.0.weight': np.zeros((0, 3, 3, 3), np.float32)},
                                 'holds an in_conv.0.weight of shape 0x3x3x3: the model needs at least one '
                                 'feature and one colour channel'),
    'missing_in_conv': (lambda s: {k: v for k, v in s.items() if k != 'in_conv.0.weight'},
                        "lacks in_conv.0.weight, from which the model's width (n_feat) and colour channels are read"),
    'in_conv_not_a_convolution': (lambda s: {**s, 'in_conv.0.weight': np.zeros((32, 3), np.float32)},
                                  'holds in_conv.0.weight of shape 32x3, where the model has a 4-D tensor'),
    'even_block_kernels': (lambda s: {k: (np.zeros((32, 32, 4, 4), np.float32) if '.conv' in k and 'weight' in k
                                          and k.split('.')[0] in ('extra_feat', 'recons_net') else v)
                                      for k, v in s.items()},
                           'gives its residual blocks 4x4 kernels (extra_feat.0.conv1.weight), but they must be '
                           'square with an odd size'),
    'even_ksize': (lambda s: {**s, 'kernel_net.fc_net.0.weight': np.zeros((1000, 144), np.float32),
                              'kernel_net.fc_net.1.weight': np.zeros((144, 1000), np.float32),
                              'kernel_net.fc_net.1.bias': np.zeros(144, np.float32)},
                   'holds a kernel_net.fc_net.0.weight taking 144 inputs, but the estimated blur kernel is ksize x '
                   'ksize with an odd ksize'),
    'fusion_width': (lambda s: {**s, 'fusion_conv.0.weight': np.zeros((32, 100, 3, 3), np.float32)},
                     'holds a fusion_conv.0.weight taking 100 channels, which is not n_sequence times n_feat=32'),
    'nan_weight': (lambda s: {**s, 'out_conv.1.bias': np.array([0.5, np.nan, 0.5], np.float32)},
                   'holds NaN or infinite values in out_conv.1.bias: model weights must be finite numbers'),
    'inf_weight': (lambda s: {**s, 'recons_net.1.conv2.weight': np.full((32, 32, 3, 3), np.inf, np.float32)},
                   'holds NaN or infinite values in recons_net.1.conv2.weight'),
    'integer_weight': (lambda s: {**s, 'out_conv.1.bias': np.array([1, 2, 3], np.int64)},
                       'holds int64 values in out_conv.1.bias, but model weights must be floating-point (float32)'),
    'complex_weight': (lambda s: {**s, 'out_conv.1.bias': np.array([1, 2, 3], np.complex64)},
                       'holds complex values (complex64) under out_conv.1.bias, where weights are real numbers'),
    'flow_shape_mismatch': (
        lambda s: {k[len(FLOW_PREFIX):]: (v.T.copy() if k.endswith('moduleRefiner.moduleMain.12.weight') else v)
                   for k, v in s.items() if k.startswith(FLOW_PREFIX)},
        'moduleRefiner.moduleMain.12.weight has shape 3x3x32x2 in the file but 2x32x3x3 in the model'),
}


@pytest.mark.parametrize('case', list(MODEL_MISMATCHES))
def test_checkpoint_that_does_not_fit_the_model(case, small_state, tmp_path, capsys):
    make, pattern = MODEL_MISMATCHES[case]
    pt = save_torch(torch_state(make(small_state)), tmp_path / 'other.pt', 'zip')
    out = tmp_path / 'model.pkl'
    code = convert(pt, out)
    captured = capsys.readouterr()
    assert_refused(code, captured.err, out, pattern)
    assert captured.out == ''


def test_another_architecture_in_a_process(tmp_path, no_torch_env):
    """Through Jittor and the model in a real process: still one sentence, no traceback."""
    path = tmp_path / 'resnet.pkl'
    save_pickle_atomic(dict(_resnet_like()), path)
    out = tmp_path / 'model.pkl'
    done = run_cli(['--pytorch_model', path, '--jittor_model', out], no_torch_env)
    assert_refused(done.returncode, done.stderr, out, 'is not a Self-Blind-VSR or PWC-Net checkpoint')


def test_same_input_and_output_is_refused(small_state, tmp_path, capsys):
    pt = _small_pt(small_state, tmp_path)
    before = pt.read_bytes()
    assert main(['--pytorch_model', str(pt), '--jittor_model', str(pt)]) == 1
    assert 'must name another file than --pytorch_model' in capsys.readouterr().err
    assert pt.read_bytes() == before


def _not_writable(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / 'read_only'
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if os.access('/sys', os.W_OK) and not os.path.isdir('/sys/kernel'):
        pytest.skip('no folder that this (root) user cannot write')
    return Path('/sys')  # sysfs takes no new files, even from root


def test_output_folder_is_checked_before_the_input_is_read(tmp_path, capsys):
    """The output folder is probed first: a long read never ends in 'cannot write'."""
    folder = _not_writable(tmp_path)
    damaged = _write(tmp_path / 'damaged.pt', b'not a checkpoint at all')
    out = folder / 'model.pkl'
    assert convert(damaged, out) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'sbvsr-convert: cannot write {out}: the folder {folder} is not writable (') \
        and err.count('\n') == 1
    assert not out.exists()


def test_output_that_is_a_folder_is_refused_first(small_state, tmp_path, capsys):
    assert convert(_write(tmp_path / 'damaged.pt', b'not a checkpoint'), tmp_path) == 1
    assert capsys.readouterr().err == f'sbvsr-convert: cannot write {tmp_path}: it is a folder\n'


HALF_WRITTEN_THEN_WAIT = '''
import pickle
from jittor_self_blind_vsr.convert_pytorch_to_jittor import main

def dump_half_then_wait(obj, f, protocol=None):
    data = pickle.dumps(obj, protocol=protocol)
    f.write(data[:len(data) // 2])
    f.flush()
    ready()  # the temporary file is half written
    time.sleep(60)
    f.write(data[len(data) // 2:])

pickle.dump = dump_half_then_wait
sys.exit(main(sys.argv[1:]))
'''


def test_ctrl_c_while_writing_leaves_no_temporary_and_the_earlier_output(small_state, tmp_path, capsys):
    pt = _small_pt(small_state, tmp_path)
    out = tmp_path / 'out' / 'small.pkl'
    out.parent.mkdir()
    assert convert(pt, out) == 0
    before = snapshot(out.parent)
    code, err = signal_when_ready(HALF_WRITTEN_THEN_WAIT, ['--pytorch_model', pt, '--jittor_model', out],
                                  signal.SIGINT)
    assert code == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == f'sbvsr-convert: interrupted (SIGINT): {out} is unchanged'
    assert snapshot(out.parent) == before
