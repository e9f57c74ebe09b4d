"""utils/checkpoint.py: torch files read without torch, exactly; unsafe pickles refused; atomic saves.

torch (a test extra) writes the reference files and is the oracle for their values;
the reader under test never imports it (test_convert.py proves that in a process
where importing torch fails).
"""
import collections
import io
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from jittor_self_blind_vsr.utils import checkpoint
from jittor_self_blind_vsr.utils.checkpoint import (
    FORMAT_LEGACY, FORMAT_PICKLE, FORMAT_ZIP, CheckpointError, load_flow_state_dict_file,
    load_pickle_safe, load_state_dict_file, read_checkpoint, save_pickle_atomic, save_state_dict_file)


def save_torch(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == 'zip'))
    return path


def mixed_tensors():
    """Tensors of every dtype and layout a state dict can hold, as torch tensors."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    return collections.OrderedDict([
        ('float', base),
        ('transposed', base.t()),                # strides (1, 6)
        ('column', base[:, 2]),                  # offset 2, stride 6
        ('block', base[1:3, 2:5]),               # offset and both strides
        ('double', torch.linspace(-1, 1, 5, dtype=torch.float64)),
        ('half', torch.tensor([0.5, -2.0, 65504.0], dtype=torch.float16)),
        ('bfloat16', torch.tensor([1.5, -3.0, 2.0 ** 100], dtype=torch.bfloat16)),
        ('int64', torch.tensor(7)),              # 0-d, like num_batches_tracked
        ('int32', torch.tensor([1, -2], dtype=torch.int32)),
        ('uint8', torch.tensor([0, 255], dtype=torch.uint8)),
        ('bool', torch.tensor([True, False])),
        ('empty', torch.zeros(0, 3)),
        ('parameter', torch.nn.Parameter(torch.full((2, 2), 0.25))),
    ])


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_torch_file_values_dtypes_and_views(tmp_path, fmt):
    tensors = mixed_tensors()
    ck = read_checkpoint(save_torch(tensors, tmp_path / 'm.pt', fmt))
    assert ck.format == {'zip': FORMAT_ZIP, 'legacy': FORMAT_LEGACY}[fmt]
    assert list(ck.content) == list(tensors)
    for key, tensor in tensors.items():
        got = ck.content[key]
        want = tensor.detach()
        want = want.float().numpy() if want.dtype == torch.bfloat16 else want.numpy()
        assert got.shape == want.shape and got.dtype == want.dtype, key
        assert np.array_equal(got, want), key


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_state_dict_is_float32_and_keeps_integers(tmp_path, fmt):
    state = load_state_dict_file(save_torch(mixed_tensors(), tmp_path / 'm.pt', fmt))
    floats = ('float', 'transposed', 'column', 'block', 'double', 'half', 'bfloat16', 'empty', 'parameter')
    assert all(state[k].dtype == np.float32 and state[k].flags.c_contiguous for k in floats)
    assert state['double'][0] == np.float32(-1.0) and state['bfloat16'][2] == np.float32(2.0 ** 100)
    assert state['int64'].dtype == np.int64 and state['int64'] == 7


def test_untyped_storage_with_dtype(tmp_path):
    """torch 2.x saves dtypes without a typed storage (uint16 here) via _rebuild_tensor_v3."""
    values = torch.tensor([1, 2, 60000, 7], dtype=torch.int32).to(torch.uint16)
    content = read_checkpoint(save_torch({'u': values[1:]}, tmp_path / 'u.pt', 'zip')).content
    assert content['u'].dtype == np.uint16 and content['u'].tolist() == [2, 60000, 7]


def test_shared_storage_and_nested_containers(tmp_path):
    weight = torch.arange(6.0)
    obj = {'a': weight, 'tied': weight[3:], 'nested': [(weight[:2], 3.5, 'text')], 'n': None}
    content = read_checkpoint(save_torch(obj, tmp_path / 's.pt', 'zip')).content
    assert content['tied'].tolist() == [3.0, 4.0, 5.0]
    assert content['nested'][0][0].tolist() == [0.0, 1.0] and content['nested'][0][1:] == (3.5, 'text')
    assert content['n'] is None


# ---------------------------------------------------------------- hand-made legacy files

class _Storage:
    """A storage as PyTorch 0.4 wrote it: root key and size, optionally a view into it."""

    def __init__(self, key, numel, view=None):
        self.key, self.numel, self.view = key, numel, view


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ('storage', torch.FloatStorage, obj.key, 'cpu', obj.numel, obj.view)
        return None


def write_legacy(obj, roots):
    """Bytes of a legacy torch file holding `obj`; `roots` = {key: float32 data}, in write order."""
    out = io.BytesIO()
    for head in (checkpoint.LEGACY_MAGIC, checkpoint.LEGACY_PROTOCOL,
                 {'protocol_version': 1001, 'little_endian': True,
                  'type_sizes': {'short': 2, 'int': 4, 'long': 8}}):
        pickle.dump(head, out, protocol=2)
    _LegacyPickler(out, protocol=2).dump(obj)
    pickle.dump(list(roots), out, protocol=2)
    for data in roots.values():
        out.write(np.int64(data.size).astype('<i8').tobytes())
        out.write(data.astype('<f4').tobytes())
    return out.getvalue()


def test_pytorch04_storage_views(tmp_path):
    """0.4-era files may name a storage as a view (key, offset, size) of a root storage."""
    root = np.arange(10, dtype=np.float32)
    view = _Storage('140', 10, ('141', 4, 6))
    obj = collections.OrderedDict(whole=_Tensor(_Storage('140', 10), 0, (2, 5), (5, 1)),
                                  tail=_Tensor(view, 1, (2, 2), (1, 2)))
    path = tmp_path / 'old.pt'
    path.write_bytes(write_legacy(obj, {'140': root}))
    content = read_checkpoint(path).content
    assert content['whole'].tolist() == root.reshape(2, 5).tolist()
    # view starts at element 4; the tensor at 5 with strides (1, 2): [[5, 7], [6, 8]]
    assert content['tail'].tolist() == [[5.0, 7.0], [6.0, 8.0]]


def test_tensor_reaching_outside_its_storage_is_refused(tmp_path):
    path = tmp_path / 'oob.pt'
    path.write_bytes(write_legacy({'w': _Tensor(_Storage('1', 3), 1, (3,), (1,))},
                                  {'1': np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match='truncated or corrupt .*outside its storage'):
        read_checkpoint(path)


# ---------------------------------------------------------------- state-dict shapes

def small_state():
    return collections.OrderedDict([('in_conv.0.weight', torch.ones(4, 3, 3, 3)),
                                    ('in_conv.0.bias', torch.arange(4.0))])


@pytest.mark.parametrize('wrap', [
    lambda s: s,
    lambda s: {'state_dict': s, 'epoch': 3},
    lambda s: {'model_state_dict': s, 'optimizer': {'lr': 1e-4, 'betas': (0.9, 0.999)}},
    lambda s: {'model': s, 'version': 1, 'logs': {'psnr': [20.5, 21.0]}},
    lambda s: collections.OrderedDict((f'module.{k}', v) for k, v in s.items()),
    lambda s: {'state_dict': collections.OrderedDict((f'module.{k}', v) for k, v in s.items())},
], ids=['plain', 'state_dict', 'model_state_dict', 'trainer', 'data_parallel', 'nested_data_parallel'])
def test_nested_and_prefixed_state_dicts(tmp_path, wrap):
    state = load_state_dict_file(save_torch(wrap(small_state()), tmp_path / 'c.pt', 'zip'))
    assert list(state) == ['in_conv.0.weight', 'in_conv.0.bias']
    assert state['in_conv.0.bias'].tolist() == [0.0, 1.0, 2.0, 3.0]


PWC_ORIGINAL = ['moduleExtractor.moduleOne.0.weight', 'moduleTwo.moduleUpflow.weight',
                'moduleSix.moduleOne.0.bias', 'moduleRefiner.moduleMain.12.weight']


def pwc_state(naming, prefix=''):
    keys = [k.replace('module', naming) for k in PWC_ORIGINAL]
    return collections.OrderedDict((prefix + k, torch.full((2,), float(i))) for i, k in enumerate(keys))


@pytest.mark.parametrize('naming,prefix', [('module', ''), ('net', ''), ('module', 'moduleNetwork.'),
                                           ('net', 'netNetwork.'), ('net', 'module.'),
                                           ('module', 'flow_net.moduleNetwork.')])
def test_pwc_net_keys_in_both_namings(tmp_path, naming, prefix):
    """Keyed as inside Flow_PWC.moduleNetwork, whichever naming and prefix the file uses."""
    path = save_torch(pwc_state(naming, prefix), tmp_path / 'network-default.pytorch', 'legacy')
    state = load_state_dict_file(path)
    assert list(state) == PWC_ORIGINAL
    assert [v[0] for v in state.values()] == [0.0, 1.0, 2.0, 3.0]
    assert list(load_flow_state_dict_file(path)) == PWC_ORIGINAL


def test_flow_part_of_a_full_checkpoint(tmp_path):
    state = collections.OrderedDict(small_state())
    state.update(('flow_net.moduleNetwork.' + k, torch.zeros(1)) for k in PWC_ORIGINAL)
    path = save_torch(state, tmp_path / 'full.pt', 'zip')
    assert list(load_state_dict_file(path)) == list(state)
    assert list(load_flow_state_dict_file(path)) == PWC_ORIGINAL
    only_model = save_torch(small_state(), tmp_path / 'model.pt', 'zip')
    with pytest.raises(CheckpointError, match='holds no PWC-Net weights'):
        load_flow_state_dict_file(only_model)


@pytest.mark.parametrize('content', [[torch.ones(2)], {'epoch': 3}, {'optimizer': {'lr': 1.0}}, 5])
def test_no_weights_is_refused(tmp_path, content):
    with pytest.raises(CheckpointError, match='holds no model weights'):
        load_state_dict_file(save_torch(content, tmp_path / 'x.pt', 'zip'))


# ---------------------------------------------------------------- our .pkl and jt.save files

def test_save_and_load_our_pkl(tmp_path):
    state = {'a': np.arange(6, dtype=np.float64).reshape(2, 3).T, 'b': np.array([3], np.int64)}
    path = tmp_path / 'w.pkl'
    save_state_dict_file(state, path)
    with open(path, 'rb') as f:
        plain = pickle.load(f)  # a plain pickle anyone can read
    assert type(plain) is dict and plain['a'].dtype == np.float32 and plain['a'].flags.c_contiguous
    assert np.array_equal(plain['a'], state['a']) and plain['b'].dtype == np.int64
    assert read_checkpoint(path).format == FORMAT_PICKLE
    loaded = load_state_dict_file(path)
    assert np.array_equal(loaded['a'], state['a']) and loaded['a'].dtype == np.float32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_trainer_state_round_trip(tmp_path):
    state = {'version': 1, 'epoch': 4, 'model': {'w': np.ones((2, 2), np.float32)},
             'optimizer': {'n_step': 10, 'm': {'w': np.zeros((2, 2), np.float32)}},
             'logs': {'psnr': [np.float64(21.5), 22.0], 'loss': []}, 'pair': (1, 'a'),
             'flags': {1, 2}, 'scalar': np.float32(0.5)}
    path = tmp_path / 'state.pkl'
    save_pickle_atomic(state, path)
    loaded = load_pickle_safe(path)
    assert loaded['epoch'] == 4 and loaded['logs']['psnr'] == [21.5, 22.0] and loaded['pair'] == (1, 'a')
    assert loaded['flags'] == {1, 2} and loaded['scalar'] == np.float32(0.5)
    assert np.array_equal(loaded['optimizer']['m']['w'], np.zeros((2, 2)))
    assert load_state_dict_file(path)['w'].tolist() == [[1.0, 1.0], [1.0, 1.0]]


@pytest.mark.parametrize('protocol', [2, 3, 4, 5])
def test_numpy_pickles_of_every_protocol(tmp_path, protocol):
    arrays = {'w': np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), 'f': np.asfortranarray(np.eye(3))}
    path = tmp_path / 'p.pkl'
    path.write_bytes(pickle.dumps(arrays, protocol=protocol))
    state = load_state_dict_file(path)
    assert np.array_equal(state['w'], arrays['w']) and np.array_equal(state['f'], np.eye(3))


def test_jittor_saved_file(tmp_path):
    jt = pytest.importorskip('jittor')
    path = str(tmp_path / 'jt.pkl')
    jt.save({'w': jt.array(np.arange(4, dtype=np.float32)), 'b': np.ones(2, np.float32)}, path)
    assert load_state_dict_file(path)['w'].tolist() == [0.0, 1.0, 2.0, 3.0]
    data = bytearray(open(path, 'rb').read())
    data[-40] ^= 0xFF  # a byte inside the pickle: the appended SHA-1 no longer matches
    open(path, 'wb').write(bytes(data))
    with pytest.raises(CheckpointError, match='Jittor checksum'):
        load_state_dict_file(path)


def test_failed_save_leaves_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / 'w.pkl'
    save_state_dict_file({'a': np.ones(2, np.float32)}, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('cannot pickle')

    with pytest.raises(RuntimeError, match='cannot pickle'):
        save_pickle_atomic({'a': np.zeros(10 ** 6), 'z': Unpicklable()}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['w.pkl']
    with pytest.raises(CheckpointError, match='does not exist'):
        save_state_dict_file({'a': np.ones(1)}, tmp_path / 'missing' / 'w.pkl')


# ---------------------------------------------------------------- unsafe and broken files

class RunsCommand:
    """Unpickling this runs a shell command (the attack a checkpoint can carry)."""

    def __init__(self, command, via='os.system'):
        self.command, self.via = command, via

    def __reduce__(self):
        import builtins
        import subprocess
        if self.via == 'os.system':
            return os.system, (self.command,)
        if self.via == 'subprocess':
            return subprocess.call, (['sh', '-c', self.command],)
        return builtins.eval, (f'__import__("os").system({self.command!r})',)


def malicious_files(folder, marker):
    """One file per route: .pkl (several callables), zip and legacy torch files."""
    command = f'touch {marker}'
    files = {}
    for via in ('os.system', 'subprocess', 'eval'):
        path = folder / f'evil_{via}.pkl'
        path.write_bytes(pickle.dumps({'w': np.ones(2), 'x': RunsCommand(command, via)}, protocol=4))
        files[via] = path
    zip_path = save_torch({'w': torch.ones(2)}, folder / 'evil_zip.pt', 'zip')
    with zipfile.ZipFile(zip_path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    pkl_name = next(n for n in entries if n.endswith('/data.pkl'))
    entries[pkl_name] = pickle.dumps({'w': RunsCommand(command)}, protocol=2)
    with zipfile.ZipFile(zip_path, 'w') as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    files['zip'] = zip_path
    legacy = folder / 'evil_legacy.pt'
    legacy.write_bytes(write_legacy({'w': RunsCommand(command)}, {}))
    files['legacy'] = legacy
    return files


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / 'marker'
    for route, path in malicious_files(tmp_path, marker).items():
        for load in (load_state_dict_file, load_pickle_safe):
            with pytest.raises(CheckpointError, match='refused to load it, since unpickling it could run code'):
                load(path)
        assert not marker.exists(), route
    # the same pickle does run the command when loaded unrestricted: the test is real
    pickle.loads((tmp_path / 'evil_os.system.pkl').read_bytes())
    assert marker.exists()


def test_a_file_cannot_alter_the_stand_ins_for_the_next(tmp_path):
    """BUILD on the allowed torch.FloatStorage stand-in (setting its dtype to object) must fail."""
    poison = tmp_path / 'poison.pkl'
    poison.write_bytes(b'\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00Osb.')
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_pickle_safe(poison)
    assert read_checkpoint(save_torch({'w': torch.ones(2)}, tmp_path / 'w.pt', 'zip')).content['w'].tolist() == [1, 1]


def test_refusal_names_the_global(tmp_path):
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps(RunsCommand('true', 'eval')))
    with pytest.raises(CheckpointError, match=r'refers to builtins\.eval, which no checkpoint holds'):
        load_pickle_safe(path)


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_truncated_torch_files(tmp_path, fmt):
    whole = save_torch(mixed_tensors(), tmp_path / 'whole.pt', fmt).read_bytes()
    cut = tmp_path / 'cut.pt'
    for size in (10, len(whole) // 3, len(whole) // 2, len(whole) - 3):
        cut.write_bytes(whole[:size])
        with pytest.raises(CheckpointError, match='truncated or corrupt'):
            read_checkpoint(cut)


@pytest.mark.parametrize('content,message', [
    (None, 'does not exist'),
    (b'', 'is empty'),
    (b'hello, this is text\n', 'is not a checkpoint'),
    (b'\x89PNG\r\n\x1a\n', 'is not a checkpoint'),
    (b'\x80\x04\x95\x05\x00', 'truncated or corrupt'),
])
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / 'x.pt'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match='is a folder'):
        read_checkpoint(tmp_path)


def test_zip_that_is_not_a_torch_file(tmp_path):
    path = tmp_path / 'images.zip'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('a/b.txt', 'x')
    with pytest.raises(CheckpointError, match='not a PyTorch checkpoint'):
        read_checkpoint(path)


# ---------------------------------------------------------------- hostile files: bounded work

# Loads one file in a fresh process whose address space is capped at 2 GiB, and reports the
# refusal and the peak of traced allocations (numpy's arrays included). Work that grows with what
# the file claims (2**40 leaves in billion_laughs(40)) would not end within the timeout.
_LOAD_BOUNDED = '''
import json, resource, sys, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from jittor_self_blind_vsr.utils.checkpoint import CheckpointError, read_checkpoint
tracemalloc.start()
try:
    read_checkpoint(sys.argv[1])
    message = None
except CheckpointError as exc:
    message = str(exc)
print(json.dumps({'message': message, 'peak': tracemalloc.get_traced_memory()[1]}))
'''


def load_bounded(path):
    env = {**os.environ, 'OPENBLAS_NUM_THREADS': '1', 'OMP_NUM_THREADS': '1'}
    done = subprocess.run([sys.executable, '-c', _LOAD_BOUNDED, str(path)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def replace_data_pkl(path, data, compress=zipfile.ZIP_STORED):
    """Rewrite the zip torch file at `path` with `data` as its data.pkl."""
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    name = next(n for n in entries if n.endswith('/data.pkl'))
    entries[name] = data
    with zipfile.ZipFile(path, 'w', compression=compress) as archive:
        for entry, content in entries.items():
            archive.writestr(entry, content)
    return path


def billion_laughs(depth):
    """A pickle of `depth` levels of [x, x]: tiny, but 2**depth leaves once unfolded."""
    laughs = ['lol']
    for _ in range(depth):
        laughs = [laughs, laughs]
    return pickle.dumps({'state_dict': laughs}, protocol=2)


def assert_refused_quickly(path, pattern):
    result = load_bounded(path)
    size = os.path.getsize(path)
    assert result['message'] is not None and re.search(pattern, result['message']), result
    # The bound: the file itself, the objects its pickle may build (4 times its size and 1 MiB),
    # and the reader's own work, no more than the file again and 1 MiB.
    assert result['peak'] < 6 * size + (2 << 20), (result, size)
    return result


def test_billion_laughs_is_refused_in_bounded_memory(tmp_path):
    path = replace_data_pkl(save_torch({'w': torch.ones(2)}, tmp_path / 'laughs.pt', 'zip'), billion_laughs(40))
    assert os.path.getsize(path) < 2000
    assert_refused_quickly(path, r'is refused: its shared references unfold into more than [\d,]+ items, more '
                                 r'than its [\d,]+-byte pickle can hold \(a "billion laughs" file\)')
    plain = tmp_path / 'laughs.pkl'
    plain.write_bytes(billion_laughs(40))
    assert_refused_quickly(plain, 'billion laughs')


# One opcode repeated: each byte builds an object (a list, a dict, a 216-byte set, a tuple) or a
# stack or memo slot; before the budget, a megabyte of them took 37 to 225 MB.
HOSTILE_OPCODES = {'lists': b']', 'dicts': b'}', 'sets': b'\x8f', 'memo entries': b'\x94', 'stack slots': b'2',
                   'tuples': b'N\x85'}


@pytest.mark.parametrize('size', [100_000, 1_000_000])
@pytest.mark.parametrize('kind', HOSTILE_OPCODES)
def test_a_pickle_that_builds_more_than_its_size_allows_is_refused(tmp_path, kind, size):
    body = HOSTILE_OPCODES[kind]
    path = tmp_path / 'objects.pkl'
    path.write_bytes(b'\x80\x04N' + body * (size // len(body)) + b'.')
    assert_refused_quickly(path, rf'is refused: its pickle builds more objects than a checkpoint of '
                                 rf'{os.path.getsize(path):,} bytes can need \(over [\d,]+ bytes: 4 times the '
                                 rf"file's size and 1 MiB\)")


def test_a_memo_index_far_ahead_is_refused_before_the_unpickler_allocates_it(tmp_path):
    """CPython's unpickler grows its memo array to twice the index: 9 bytes would ask for 4 GiB."""
    path = tmp_path / 'memo.pkl'
    path.write_bytes(b'\x80\x02Nr\xff\xff\xff\x0f.')
    assert_refused_quickly(path, 'is refused: its memo skips from entry 0 to 268,435,455, which no pickler writes')


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_many_empty_tensors_load_within_the_allowance(tmp_path, fmt):
    """A state dict's pickle is mostly what it builds (keys, tensor records), its data aside: the
    published model's 349 tensors need about half of the fixed allowance with no data at all."""
    state = collections.OrderedDict((f'recons_net.body.{i}.conv.weight', torch.zeros(0)) for i in range(1000))
    got = read_checkpoint(save_torch(state, tmp_path / 'empty.pt', fmt)).content
    assert list(got) == list(state) and all(value.shape == (0,) for value in got.values())


def test_shared_references_stay_shared(tmp_path):
    """Sharing that a tree without it could hold as well is loaded, and stays shared."""
    betas = (0.9, 0.999)
    path = tmp_path / 'shared.pkl'
    path.write_bytes(pickle.dumps({'groups': [{'betas': betas}, {'betas': betas}]}, protocol=2))
    groups = load_pickle_safe(path)['groups']
    assert groups[0]['betas'] == (0.9, 0.999) and groups[0]['betas'] is groups[1]['betas']


def _strided_zip(path, size, stride):
    """A zip torch file whose tensor 'w' has the given size and stride over a one-element storage."""
    save_torch({'w': torch.ones(1)}, path, 'zip')
    with zipfile.ZipFile(path) as archive:
        data = next(archive.read(n) for n in archive.namelist() if n.endswith('/data.pkl'))
    # torch pickles size and stride as tuples of one BININT1 each: (1,) and (1,)
    one = b'K\x01\x85'
    assert data.count(one) == 2
    head, mid, tail = data.split(one, 2)
    encode = lambda values: b'(' + b''.join(b'\x8a\x08' + int(v).to_bytes(8, 'little') for v in values) + b't'
    return replace_data_pkl(path, head + encode(size) + mid + encode(stride) + tail)


@pytest.mark.parametrize('size', [(18000, 18000), (1 << 20, 1 << 20)])  # 1.3 GB, 4 TiB
def test_stride_zero_view_is_refused_before_allocating(tmp_path, size):
    path = _strided_zip(tmp_path / 'stride0.pt', size, (0, 0))
    assert os.path.getsize(path) < 2000
    assert_refused_quickly(path, rf'is refused: its tensor w would hold {size[0] * size[1]:,} values, but its '
                                 r'storage holds only 1 \(a view that repeats its data\)')


def test_overlapping_views_are_bounded_together(tmp_path):
    """Views of one storage may overlap (tied weights), but not repeat it without end."""
    base = torch.arange(1000.0)
    path = save_torch({f'v{i}': base[i:i + 800] for i in range(200)}, tmp_path / 'views.pt', 'zip')
    assert_refused_quickly(path, r"its tensors would take more than 8,000 bytes, 2 times the 4,000 bytes of data "
                                 r"it holds \(views that repeat their data\)")
    tied = save_torch({'a': base, 'b': base, 'half': base[500:]}, tmp_path / 'tied.pt', 'zip')
    content = read_checkpoint(tied).content
    assert content['a'] is content['b'] and content['half'].tolist() == list(range(500, 1000))


def _nested_lists(depth):
    return b'\x80\x02' + b']' * (depth + 1) + b'a' * depth + b'.'


def test_deep_nesting_and_cycles_are_refused(tmp_path):
    deep = tmp_path / 'deep.pkl'
    deep.write_bytes(_nested_lists(5000))
    assert_refused_quickly(deep, 'is refused: its containers nest more than 100 deep, which no checkpoint does')
    shallow = tmp_path / 'shallow.pkl'
    shallow.write_bytes(_nested_lists(99))
    assert isinstance(load_pickle_safe(shallow), list)
    cycle = tmp_path / 'cycle.pkl'
    cycle.write_bytes(b'\x80\x02}X\x01\x00\x00\x00w]q\x00h\x00as.')  # {'w': L} with L = [L]
    assert_refused_quickly(cycle, 'is refused: the container under w contains itself, which no checkpoint does')


def test_zip_bomb_is_refused_and_recompressed_files_load(tmp_path):
    bomb = replace_data_pkl(save_torch({'w': torch.ones(2)}, tmp_path / 'bomb.pt', 'zip'),
                            pickle.dumps([None] * 10_000_000, protocol=2), zipfile.ZIP_DEFLATED)
    assert os.path.getsize(bomb) < 100_000
    assert_refused_quickly(bomb, r'is refused: its zip entries unpack to [\d,]+ bytes, more than 4 times the '
                                 r"file's [\d,]+ \(PyTorch stores them uncompressed\)")
    weights = torch.randn(64, 64)
    path = save_torch({'w': weights}, tmp_path / 'w.pt', 'zip')
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    assert np.array_equal(load_state_dict_file(path)['w'], weights.numpy())


def test_out_of_memory_names_the_cause(tmp_path, monkeypatch):
    def exhausted(*_args):
        raise MemoryError
    monkeypatch.setattr(checkpoint._Storages, 'set_raw', exhausted)
    path = save_torch({'w': torch.ones(2)}, tmp_path / 'w.pt', 'zip')
    with pytest.raises(CheckpointError, match=r'w\.pt could not be loaded: its tensors need more memory than '
                                              r'is free$'):
        read_checkpoint(path)


@pytest.mark.filterwarnings('ignore:ComplexHalf support is experimental')  # torch's, making the file
def test_complex_and_unsupported_tensors_are_named_as_such(tmp_path):
    path = save_torch({'w': torch.zeros(2, dtype=torch.complex64)}, tmp_path / 'c.pt', 'zip')
    assert read_checkpoint(path).content['w'].dtype == np.complex64
    with pytest.raises(CheckpointError, match=r'holds complex values \(complex64\) under w, where weights are '
                                              r'real numbers'):
        load_state_dict_file(path)
    half = save_torch({'w': torch.zeros(2, dtype=torch.complex32)}, tmp_path / 'chalf.pt', 'zip')
    with pytest.raises(CheckpointError, match=r'holds tensors of type torch\.\w+, which this reader does not '
                                              r'support \(the model needs float32 weights\)'):
        load_state_dict_file(half)


@pytest.mark.parametrize('value,message', [
    (np.array([1.0, np.nan], np.float32), 'holds NaN or infinite values in k: model weights must be finite numbers'),
    (np.array([1e300], np.float64), 'holds NaN or infinite values in k'),
    (np.array([1, 2], np.int64), r'holds int64 values in k, but model weights must be floating-point \(float32\)'),
    (np.array([True]), 'holds bool values in k'),
    (np.array([1j], np.complex64), 'holds complex64 values in k'),
    (3.5, 'holds a float in k'),
])
def test_check_float_arrays(value, message):
    with pytest.raises(CheckpointError, match=message):
        checkpoint.check_float_arrays('f.pkl', {'ok': np.ones(2, np.float32), 'k': value}, 'model weights')
    checkpoint.check_float_arrays('f.pkl', {'ok': np.ones(2, np.float64)}, 'model weights')


class _ObjectArray:
    """Pickles as numpy writes an object array, claiming a million items but holding one."""

    def __reduce__(self):
        return np.zeros(1).__reduce__()[0], (np.ndarray, (0,), b'b'), (1, (10 ** 6,), np.dtype('O'), False, [1])


def test_numpy_state_is_checked_before_numpy_sees_it(tmp_path):
    """numpy 1.26's own __setstate__ crashes the process on this 100-byte file."""
    path = tmp_path / 'objects.pkl'
    path.write_bytes(pickle.dumps({'w': _ObjectArray()}, protocol=2))
    assert_refused_quickly(path, "is refused: it holds a numpy array of type 'O8', but checkpoints hold numbers only")
    short = tmp_path / 'short.pkl'
    short.write_bytes(pickle.dumps({'w': np.ones(6, np.float32)}, protocol=2).replace(b'\x06\x85', b'\x07\x85'))
    assert_refused_quickly(short, r'truncated or corrupt \(a numpy array whose data does not match its shape\)')


def test_numpy_arrays_and_scalars_of_every_kind_are_rebuilt_exactly(tmp_path):
    values = {'fortran': np.asfortranarray(np.arange(12.0).reshape(3, 4)), 'big': np.arange(5, dtype='>i4'),
              'bool': np.array([True, False]), 'complex': np.array([1 + 2j], np.complex64),
              'scalars': [np.float32(0.5), np.int64(-3), np.bool_(True), np.float64(2.0) ** 60]}
    for protocol in (2, 4, 5):
        path = tmp_path / f'p{protocol}.pkl'
        path.write_bytes(pickle.dumps(values, protocol=protocol))
        got = load_pickle_safe(path)
        for key in ('fortran', 'big', 'bool', 'complex'):
            assert got[key].dtype == values[key].dtype and np.array_equal(got[key], values[key]), key
            assert got[key].flags.writeable
        assert got['fortran'].flags.f_contiguous
        assert [type(v) for v in got['scalars']] == [type(v) for v in values['scalars']]
        assert got['scalars'] == values['scalars']


def test_tuples_nested_a_million_deep_are_refused_before_unpickling(tmp_path):
    """CPython hashes nested tuples without a depth guard: as a dict key they crash the process."""
    path = tmp_path / 'deep_key.pkl'
    path.write_bytes(b'\x80\x02}N' + b'\x85' * 1_000_000 + b'Ns.')
    assert_refused_quickly(path, 'is refused: its containers nest more than 100 deep, which no checkpoint does')


def test_nesting_built_bottom_up_through_the_memo_is_refused(tmp_path):
    """Lists made first and linked later nest deeper than their opcodes show: the resolver counts."""
    count = 300
    ops = [b'\x80\x02']
    for i in range(count):
        ops.append(b']r' + i.to_bytes(4, 'little') + b'0')  # EMPTY_LIST, LONG_BINPUT i, POP
    for i in range(count - 1):
        ops.append(b'j' + i.to_bytes(4, 'little') + b'j' + (i + 1).to_bytes(4, 'little') + b'a0')
    ops.append(b'j' + (0).to_bytes(4, 'little') + b'.')
    path = tmp_path / 'linked.pkl'
    path.write_bytes(b''.join(ops))
    assert_refused_quickly(path, 'is refused: its containers nest more than 100 deep, which no checkpoint does')


def test_bytes_only_in_latin1(tmp_path):
    path = tmp_path / 'codec.pkl'
    path.write_bytes(b'\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x06\x00\x00\x00rot_13\x86R.')
    with pytest.raises(CheckpointError, match="truncated or corrupt \\(bytes in the encoding 'rot_13'\\)"):
        load_pickle_safe(path)
