"""Checkpoint files: read PyTorch `.pt` and our `.pkl` safely, write `.pkl` atomically.

Loading a pickle can run any code the file names, and checkpoints come from the
internet. Every file here goes through `_SafeUnpickler`, which builds only what a
checkpoint holds (dicts, lists, numbers, strings, numpy arrays, torch tensors and
storages) and refuses every other global with `CheckpointError`.

PyTorch files are read without torch, in both of its formats:
* legacy (PyTorch <= 1.5, the published weights): consecutive pickles -- magic number,
  protocol version, system info, the object (storages as persistent ids), the list of
  storage keys -- followed, per key, by an int64 element count and the raw data, both
  little-endian;
* zip (PyTorch >= 1.6): `<name>/data.pkl` with the same persistent ids, the storages
  as `<name>/data/<key>`, their byte order in `<name>/byteorder`.
Tensors come back as numpy arrays, floating ones as float32.

A file of S bytes makes the reader build O(S) objects and O(S) bytes of arrays, whatever
it claims: the objects its pickle builds, estimated from the opcodes before anything is
built, take at most _BUILD_FACTOR * S + _BUILD_ALLOWANCE bytes, shared references stay
shared and may not unfold into more items than the pickle has bytes, containers nest at
most MAX_NESTING deep, a tensor holds at most as many values as its storage and all
tensors together at most _VIEW_BUDGET times the bytes of their storages, and a zip's
entries unpack to at most _UNPACK_LIMIT times the file's size. Each limit breached is
refused with a sentence saying which.
"""
import collections
import hashlib
import io
import math
import os
import pickle
import pickletools
import re
import sys
import zipfile
from dataclasses import dataclass

import numpy as np

from jittor_self_blind_vsr import weights
from jittor_self_blind_vsr.utils.atomic import atomic_file
from jittor_self_blind_vsr.utils.cli import UserError


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message is one sentence for the user."""


LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
FORMAT_LEGACY = 'PyTorch legacy format (PyTorch <= 1.5)'
FORMAT_ZIP = 'PyTorch zip format (PyTorch >= 1.6)'
FORMAT_PICKLE = 'pickle'
NESTING_KEYS = ('state_dict', 'model_state_dict', 'model')

# jt.save appends the SHA-1 of the pickle and this marker.
_JITTOR_TRAILER = b'HCAJSLHD'
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'  # every pickle of protocol >= 2 starts with PROTO
_BFLOAT16 = 'bfloat16'  # numpy has no bfloat16: widened to float32 on reading
_PWC_PARTS = {'Extractor', 'Two', 'Thr', 'Fou', 'Fiv', 'Six', 'Refiner'}
_PWC_KEY = re.compile(r'^(?:flow_net\.)?(?:(?:module|net)Network\.)?(?:module|net)([A-Z][a-z]+)\.')
_PWC_OUTER = re.compile(r'^(?:flow_net\.)?(?:module|net)Network\.')
_NET_PART = re.compile(r'^net(?=[A-Z])')
FLOW_PREFIX = 'flow_net.moduleNetwork.'

# Checkpoints nest a handful of levels (trainer state > model > tensor); anything deeper is hostile.
MAX_NESTING = 100
# Tied and sliced views may share a storage; beyond this factor they only repeat its data.
_VIEW_BUDGET = 2
# PyTorch stores zip entries uncompressed; a few times the file's size allows recompressed files.
_UNPACK_LIMIT = 4

_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': _BFLOAT16, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_, 'UntypedStorage': np.uint8,
    'ComplexFloatStorage': np.complex64, 'ComplexDoubleStorage': np.complex128,
}
_TORCH_DTYPES = {
    'float32': np.float32, 'float': np.float32, 'float64': np.float64, 'double': np.float64,
    'float16': np.float16, 'half': np.float16, 'bfloat16': _BFLOAT16,
    'int64': np.int64, 'long': np.int64, 'int32': np.int32, 'int': np.int32,
    'int16': np.int16, 'short': np.int16, 'int8': np.int8, 'uint8': np.uint8, 'bool': np.bool_,
    'uint16': np.uint16, 'uint32': np.uint32, 'uint64': np.uint64,
    'complex64': np.complex64, 'cfloat': np.complex64, 'complex128': np.complex128, 'cdouble': np.complex128,
}
# Torch tensor types numpy cannot hold: named as unsupported data, not as a code threat.
_UNSUPPORTED_TORCH = re.compile(
    r'^(?:\w+Storage|complex32|chalf|q(?:u?int\w+)|float8_\w+|float4_\w+|bits\w+|u?int[1-7])$')


# Tuples without a __dict__: a pickle's BUILD opcode cannot alter them, so one file
# cannot change how the shared stand-ins read the next.
_TorchType = collections.namedtuple('_TorchType', 'name dtype')  # a torch storage class or dtype
# A storage named by a persistent id; legacy views start `offset` elements into their root.
_StorageRef = collections.namedtuple('_StorageRef', 'key dtype offset numel')
# A tensor whose storage data may not be read yet (legacy files store it after the pickle).
_PendingTensor = collections.namedtuple('_PendingTensor', 'storage offset size stride dtype', defaults=(None,))


def _rebuild_tensor(storage, storage_offset, size, stride, *_grad_hooks_metadata):
    if type(storage) is not _StorageRef:
        raise pickle.UnpicklingError('a tensor without a storage')
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(type(n) is int and n >= 0 for n in size + stride):
        raise pickle.UnpicklingError('a tensor with a malformed shape')
    return _PendingTensor(storage, int(storage_offset), size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *_metadata):
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    return _PendingTensor(tensor.storage, tensor.offset, tensor.size, tensor.stride, dtype.dtype)


def _rebuild_parameter(data, *_grad_hooks_state):
    return data


def _jittor_var(data):
    # jt.save pickles a Var as (jittor.Var, (ndarray,)): the array is all we need.
    if type(data) is not _ArrayState:
        raise pickle.UnpicklingError('a Jittor Var without an array')
    return data


class _Refusal(Exception):
    """Content no checkpoint holds, refused while unpickling; the message completes 'X is refused: '."""


# numpy's own __setstate__ trusts the pickle (an object array claiming more items than its
# list crashes numpy 1.26, a zero-size dtype makes a trillion-element array), so arrays,
# dtypes and scalars are rebuilt here from checked parts: numbers only, data of exactly
# the size the shape needs.
_NumpyClass = collections.namedtuple('_NumpyClass', 'name')  # numpy.ndarray, as _reconstruct's argument
_NDARRAY = _NumpyClass('ndarray')


class _DtypeState:
    """A numeric numpy dtype a pickle names; BUILD may set its byte order only."""
    __slots__ = ('dtype',)

    def __init__(self, dtype):
        self.dtype = dtype

    def __setstate__(self, state):
        if type(state) is not tuple or len(state) < 5 or state[1] not in ('<', '>', '|', '='):
            raise pickle.UnpicklingError('a malformed numpy dtype')
        if any(part is not None for part in state[2:5]):
            raise _Refusal('it holds a structured numpy array, which no checkpoint does')
        if state[1] in '<>':
            self.dtype = self.dtype.newbyteorder(state[1])


class _ArrayState:
    """A numpy array being unpickled: _reconstruct makes it, BUILD gives it shape, dtype and data."""
    __slots__ = ('array',)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if self.array is not None or type(state) is not tuple or len(state) != 5:
            raise pickle.UnpicklingError('a malformed numpy array')
        _version, shape, dtype, fortran, data = state
        self.array = _numpy_array(data, dtype, shape, 'F' if fortran else 'C')


def _numpy_dtype(spec, *_align_copy):
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in 'biufc' or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refusal(f'it holds a numpy array of type {spec!r:.40}, but checkpoints hold numbers only')
    return _DtypeState(dtype)


def _raw_bytes(data):
    if isinstance(data, str):  # Python 2 pickles, read with encoding='latin1'
        return data.encode('latin1')
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError('a numpy array without data')
    return data


def _numpy_array(data, dtype, shape, order):
    if type(dtype) is not _DtypeState or type(shape) is not tuple or order not in ('C', 'F'):
        raise pickle.UnpicklingError('a malformed numpy array')
    if not all(type(n) is int and n >= 0 for n in shape):
        raise pickle.UnpicklingError('a numpy array with a malformed shape')
    data = _raw_bytes(data)
    if len(data) != math.prod(shape) * dtype.dtype.itemsize:
        raise pickle.UnpicklingError('a numpy array whose data does not match its shape')
    return np.frombuffer(data, dtype.dtype).reshape(shape, order=order).copy(order='K')


def _numpy_reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError('an array of an unknown class')
    return _ArrayState()


def _numpy_scalar(dtype, data):
    return _numpy_array(data, dtype, (), 'C')[()]


def _numpy_frombuffer(data, dtype, shape, order):
    return _numpy_array(data, dtype, tuple(shape), order)


def _latin1(text, encoding):
    # protocol-2 pickles write bytes as codecs.encode(str, 'latin1'); no other codec is needed
    if encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError(f'bytes in the encoding {encoding!r:.20}')
    return text.encode('latin1')


def _numpy_globals():
    # numpy 1.x pickles name numpy.core.*, numpy 2.x numpy._core.*
    allowed = {('numpy', 'ndarray'): _NDARRAY, ('numpy', 'dtype'): _numpy_dtype}
    for core in ('numpy.core', 'numpy._core'):
        allowed[(core + '.multiarray', '_reconstruct')] = _numpy_reconstruct
        allowed[(core + '.multiarray', 'scalar')] = _numpy_scalar
        allowed[(core + '.numeric', '_frombuffer')] = _numpy_frombuffer
    return allowed


def _allowed_globals():
    allowed = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('_codecs', 'encode'): _latin1,
        ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
        ('torch._utils', '_rebuild_tensor_v3'): _rebuild_tensor_v3,
        ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
        ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
        ('jittor', 'jittor_core.Var'): _jittor_var,
    }
    for name, dtype in {**_STORAGE_DTYPES, **_TORCH_DTYPES}.items():
        allowed[('torch', name)] = _TorchType(name, dtype)
    allowed[('torch.storage', 'UntypedStorage')] = _TorchType('UntypedStorage', np.uint8)
    allowed.update(_numpy_globals())
    return allowed


_ALLOWED = _allowed_globals()
# Python 2 pickles (PyTorch 0.4 under Python 2) name builtins differently.
_PY2_MODULES = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}


def _opcode_roles():
    """{opcode: role} for _check_opcodes: the stack effect of each opcode, worked out once."""
    special = {'MARK': 'mark', 'PUT': 'put', 'BINPUT': 'put', 'LONG_BINPUT': 'put', 'MEMOIZE': 'memoize',
               'GET': 'get', 'BINGET': 'get', 'LONG_BINGET': 'get', 'DUP': 'dup', 'POP': 'pop',
               'POP_MARK': 'pop_mark'}
    # these add to the container below their arguments, which stays on the stack
    fills = {'APPEND', 'APPENDS', 'SETITEM', 'SETITEMS', 'ADDITEMS', 'BUILD'}
    roles = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        if op.name in special:
            roles[op] = special[op.name]
        elif not before:
            roles[op] = 'leaf' if op.stack_after else 'none'
        elif pickletools.markobject in before:
            roles[op] = ('marked', before.index(pickletools.markobject), op.name in fills, bool(op.stack_after))
        else:
            roles[op] = ('counted', len(before), op.name in fills, bool(op.stack_after))
    return roles



# What CPython (64-bit) allocates for the object an opcode builds, at most, in bytes: an empty
# container, a tuple's header, what an allowed callable returns (our stand-ins: named tuples,
# an empty OrderedDict); a value read from the opcode's argument costs its own size on top.
_BUILD_BYTES = {'EMPTY_LIST': 56, 'LIST': 56, 'EMPTY_DICT': 64, 'DICT': 64, 'EMPTY_SET': 216, 'FROZENSET': 216,
                'TUPLE': 40, 'TUPLE1': 40, 'TUPLE2': 40, 'TUPLE3': 40, 'REDUCE': 200, 'NEWOBJ': 200,
                'NEWOBJ_EX': 200, 'OBJ': 200, 'INST': 200, 'PERSID': 200, 'BINPERSID': 200}
# ... and per item an opcode puts into a container (a slot, with room to grow; a dict's or a set's table).
_ITEM_BYTES = {'TUPLE': 8, 'TUPLE1': 8, 'TUPLE2': 8, 'TUPLE3': 8, 'LIST': 16, 'APPEND': 16, 'APPENDS': 16,
               'DICT': 48, 'SETITEM': 48, 'SETITEMS': 48, 'FROZENSET': 64, 'ADDITEMS': 64}
_ARGUMENT_VALUES = frozenset({'INT', 'BININT', 'BININT1', 'BININT2', 'LONG', 'LONG1', 'LONG4', 'FLOAT', 'BINFLOAT',
                              'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'BINBYTES', 'SHORT_BINBYTES', 'BINBYTES8',
                              'BYTEARRAY8', 'UNICODE', 'BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8'})
_SLOT_BYTES = 16  # a stack or memo slot: a pointer, in an array that doubles as it grows
# The objects a pickle in a file of S bytes builds, estimated as above, may take
# _BUILD_FACTOR * S + _BUILD_ALLOWANCE bytes. A state dict's pickle builds about 11 bytes
# per byte by this estimate (key strings, tensor records), but it is a small part of the
# file: the published model's shape (349 tensors) has a 46 KB pickle estimated at 0.5 MB
# in a 77 MB file. The allowance lets about 2,000 tensors load even with no data at all.
_BUILD_FACTOR = 4
_BUILD_ALLOWANCE = 1 << 20


def _opcode_costs():
    """{opcode: (role, bytes built, bytes per item put in a container, True where the argument is a value)}."""
    return {op: (role, _BUILD_BYTES.get(op.name, 0), _ITEM_BYTES.get(op.name, 0), op.name in _ARGUMENT_VALUES)
            for op, role in _opcode_roles().items()}


_OPCODES = _opcode_costs()


def _check_opcodes(stream, file_size):
    """Refuse a pickle that nests deeper than MAX_NESTING, or builds more objects than a
    checkpoint of `file_size` bytes can need, before it is unpickled.

    CPython hashes nested tuples recursively without a depth guard, so a dict key or set
    element nested a million deep (a megabyte of TUPLE1 opcodes) crashes the unpickler
    itself; and one byte of a pickle can build a 216-byte set, or make the unpickler's memo
    an array of a billion slots. The opcodes are read once and nothing is built: each stack
    item is a cell holding its depth (scalars share one), shared through the memo so that a
    container filled later counts its new items, and each opcode adds what it would build to
    the estimate (no opcode's cost is ever given back, so the estimate bounds this scan, the
    unpickler, and the resolver's copy of the tree alike). The stream is left where it was.
    """
    start = stream.tell()
    budget = _BUILD_FACTOR * file_size + _BUILD_ALLOWANCE
    scalar = (0,)  # depth cell of every leaf that is no container: read, never filled
    stack, marks, memo = [], [], []
    built = deepest = 0
    for op, arg, _pos in pickletools.genops(stream):
        role, build, per_item, valued = _OPCODES[op]
        built += build
        if role == 'leaf':
            if valued:
                built += sys.getsizeof(arg)
            stack.append([0] if build else scalar)
        elif role == 'memoize':
            memo.append(stack[-1])
        elif role == 'put':
            if arg > len(memo):
                raise _Refusal(f'its memo skips from entry {len(memo):,} to {arg:,}, which no pickler writes')
            memo[arg:arg + 1] = [stack[-1]]
        elif role == 'get':
            stack.append(memo[arg] if arg < len(memo) else scalar)
        elif role == 'mark':
            marks.append(len(stack))
        elif role == 'dup':
            stack.append(stack[-1])
        elif role == 'pop':
            if marks and marks[-1] == len(stack):
                marks.pop()
            else:
                stack.pop()
        elif role == 'pop_mark':
            del stack[marks.pop():]
        elif role != 'none':
            how, count, fills, pushes = role
            if how == 'marked':
                count += len(stack) - marks.pop()
            popped = stack[len(stack) - count:] if count else []
            del stack[len(stack) - len(popped):]
            built += per_item * (len(popped) - fills)
            if fills:
                target = popped[0] if popped[0] is not scalar else [0]
                target[0] = max(target[0], 1 + max((cell[0] for cell in popped[1:]), default=0))
                stack.append(target)
            elif pushes:
                stack.append([1 + max((cell[0] for cell in popped), default=-1)])
            if stack and stack[-1][0] > MAX_NESTING:
                raise _Refusal(f'its containers nest more than {MAX_NESTING} deep, which no checkpoint does')
        if len(stack) + len(marks) > deepest:
            deepest = len(stack) + len(marks)
        if built + _SLOT_BYTES * (deepest + len(memo)) > budget:
            raise _Refusal(f'its pickle builds more objects than a checkpoint of {file_size:,} bytes can need '
                           f'(over {budget:,} bytes: {_BUILD_FACTOR} times the file\'s size and '
                           f'{_BUILD_ALLOWANCE >> 20} MiB)')
    stream.seek(start)


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only checkpoint content; `storages` resolves torch persistent ids.

    `file` must be seekable: its opcodes are checked before anything is built, against the
    size of the checkpoint file it comes from (by default: from where it stands to its end)."""

    def __init__(self, file, path, storages=None, file_size=None):
        super().__init__(file, encoding='latin1')
        self._file = file
        self._path = path
        self._storages = storages
        self._file_size = file_size

    def load(self):
        size = self._file_size
        if size is None:
            here = self._file.tell()
            size = self._file.seek(0, io.SEEK_END) - here
            self._file.seek(here)
        _check_opcodes(self._file, size)
        return super().load()

    def find_class(self, module, name):
        module = _PY2_MODULES.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            if module in ('torch', 'torch.storage') and _UNSUPPORTED_TORCH.match(name):
                raise CheckpointError(f'{self._path} holds tensors of type {module}.{name}, which this reader '
                                      'does not support (the model needs float32 weights)') from None
            raise CheckpointError(
                f'{self._path} refers to {module}.{name}, which no checkpoint holds: refused to load it, '
                'since unpickling it could run code') from None

    def persistent_load(self, pid):
        if self._storages is None:
            raise pickle.UnpicklingError('a torch storage outside a torch file')
        return self._storages.ref(pid)


class _Storages:
    """Storage data of one torch file, decoded once per key; `ref` resolves persistent ids."""

    def __init__(self, byteorder):
        self._byteorder = byteorder
        self._roots = {}  # key -> (dtype, numel) as first named
        self._arrays = {}

    def ref(self, pid):
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != 'storage':
            raise pickle.UnpicklingError(f'unknown persistent id {pid!r:.60}')
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if type(storage_type) is not _TorchType or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError('a malformed storage id')
        key = str(key)
        self._roots.setdefault(key, (storage_type.dtype, numel))
        if view is None:
            return _StorageRef(key, storage_type.dtype, 0, numel)
        _view_key, offset, view_numel = view
        return _StorageRef(key, storage_type.dtype, int(offset), int(view_numel))

    def roots(self):
        """(key, nbytes) of every storage named, in the order first named."""
        return [(key, numel * _itemsize(dtype)) for key, (dtype, numel) in self._roots.items()]

    def itemsize(self, key):
        return _itemsize(self._roots[key][0])

    def set_raw(self, key, raw):
        self._arrays[key] = _decode(raw, self._roots[key][0], self._byteorder)

    def held_bytes(self):
        """Bytes of every storage the file holds, as decoded (bfloat16 widened)."""
        return sum(data.nbytes for data in self._arrays.values())

    def array(self, ref):
        """The elements of a storage (view) as a 1-D numpy array (bfloat16 widened to float32)."""
        if ref.key not in self._arrays:
            raise pickle.UnpicklingError(f'storage {ref.key} is missing')
        data = self._arrays[ref.key]
        if ref.offset < 0 or ref.numel < 0 or ref.offset + ref.numel > data.size:
            raise pickle.UnpicklingError('a storage view outside its storage')
        return data[ref.offset:ref.offset + ref.numel]

    def typed(self, ref, dtype):
        """(elements, widen): the storage's bytes read as `dtype` (an untyped storage under
        _rebuild_tensor_v3), bfloat16 as raw uint16 bits for the caller to widen once copied."""
        data = self.array(ref)
        if dtype is None or dtype == ref.dtype:
            return data, False
        if self._roots[ref.key][0] == _BFLOAT16:
            raise pickle.UnpicklingError('a bfloat16 storage read as another type')
        raw = np.uint16 if dtype == _BFLOAT16 else dtype
        return data.view(np.dtype(raw).newbyteorder(self._byteorder)), dtype == _BFLOAT16


def _itemsize(dtype):
    return 2 if dtype == _BFLOAT16 else np.dtype(dtype).itemsize


def _widen_bfloat16(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _decode(raw, dtype, byteorder):
    if dtype == _BFLOAT16:
        return _widen_bfloat16(np.frombuffer(raw, dtype=np.dtype(np.uint16).newbyteorder(byteorder)))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(byteorder))


# What the resolver replaces or descends into; everything else is a plain value.
_ACTIVE = frozenset({dict, collections.OrderedDict, list, tuple, _PendingTensor, _StorageRef, _ArrayState})


def _name(key):
    return key if isinstance(key, str) else repr(key)[:40]


class _Resolver:
    """Replaces pending tensors and bare storages in a loaded tree by numpy arrays,
    with work and memory bounded by the file.

    A pickle stores an object referenced twice once. Resolving keeps such sharing
    (memoised by identity), and refuses a tree whose sharing would unfold into more
    items than the pickle has bytes: written without sharing, every item costs at least
    one byte, so only a "billion laughs" file exceeds that, and no later walk over the
    tree (checks, copies) can cost more than the file's size. Tensors are memoised by
    view; each may hold no more values than its storage, and all of them together at
    most _VIEW_BUDGET times the bytes of the storages, checked before anything is copied.
    """

    def __init__(self, path, pickle_size, storages=None):
        self._path = path
        self._max_items = max(pickle_size, 1)
        self._storages = storages
        self._budget = _VIEW_BUDGET * storages.held_bytes() if storages is not None else 0
        self._spent = 0
        self._done = {}  # id(container) -> (resolved, items it unfolds to)
        self._views = {}  # _PendingTensor or _StorageRef -> array
        self._open = set()  # ids of the containers being resolved (the current path)

    def __call__(self, root):
        return self._resolve(root, 0, 'the checkpoint')[0]

    def _refuse(self, why):
        raise CheckpointError(f'{self._path} is refused: {why}')

    def _resolve(self, obj, depth, where):
        kind = type(obj)
        if kind is _PendingTensor or kind is _StorageRef:
            return self._array(obj, where), 1
        if kind is _ArrayState:
            if obj.array is None:
                raise pickle.UnpicklingError('a numpy array without data')
            return obj.array, 1
        if not isinstance(obj, dict) and kind not in (list, tuple):
            return obj, 1
        ident = id(obj)
        if ident in self._done:
            return self._done[ident]
        if ident in self._open:
            self._refuse(f'the container under {where} contains itself, which no checkpoint does')
        if depth >= MAX_NESTING:
            self._refuse(f'its containers nest more than {MAX_NESTING} deep, which no checkpoint does')
        self._open.add(ident)
        items = 1
        out = []
        if kind in (list, tuple) and _ACTIVE.isdisjoint(map(type, obj)):  # plain values: copied at C speed
            out, items = obj, 1 + len(obj)
        elif isinstance(obj, dict) and _ACTIVE.isdisjoint(map(type, obj.values())):
            out, items = obj.items(), 1 + 2 * len(obj)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                resolved, count = self._resolve(value, depth + 1, _name(key))
                out.append((key, resolved))
                items += 1 + count
        else:
            for value in obj:
                resolved, count = self._resolve(value, depth + 1, where)
                out.append(resolved)
                items += count
        self._open.discard(ident)
        if items > self._max_items:
            self._refuse(f'its shared references unfold into more than {self._max_items:,} items, more than '
                         f'its {self._max_items:,}-byte pickle can hold (a "billion laughs" file)')
        self._done[ident] = (kind(out), items)
        return self._done[ident]

    def _array(self, ref, where):
        if ref not in self._views:
            if type(ref) is _StorageRef:
                data = self._storages.array(ref)
                self._spend(data.nbytes)
                self._views[ref] = data.copy()
            else:
                self._views[ref] = self._tensor(ref, where)
        return self._views[ref]

    def _spend(self, nbytes):
        self._spent += nbytes
        if self._spent > self._budget:
            self._refuse(f'its tensors would take more than {self._budget:,} bytes, {_VIEW_BUDGET} times the '
                         f'{self._budget // _VIEW_BUDGET:,} bytes of data it holds (views that repeat their data)')

    def _tensor(self, tensor, where):
        data, widen = self._storages.typed(tensor.storage, tensor.dtype)
        size, stride, offset = tensor.size, tensor.stride, tensor.offset
        numel = math.prod(size)
        if numel > data.size:
            self._refuse(f'its tensor {where} would hold {numel:,} values, but its storage holds only '
                         f'{data.size:,} (a view that repeats its data)')
        dtype = np.dtype(np.float32) if widen else data.dtype
        self._spend(numel * dtype.itemsize)
        if numel == 0:
            return np.zeros(size, dtype=dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or last >= data.size:
            raise pickle.UnpicklingError('a tensor reaching outside its storage')
        strides = tuple(s * data.itemsize for s in stride)
        copy = np.lib.stride_tricks.as_strided(data[offset:], shape=size, strides=strides).copy()
        return _widen_bfloat16(copy) if widen else copy


@dataclass(frozen=True)
class Checkpoint:
    """What a file holds (tensors as numpy arrays) and which format it was read from (FORMAT_*)."""
    content: object
    format: str


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith('/data.pkl') and n.count('/') == 1]
        if not pkl:
            raise CheckpointError(f'{path} is a zip archive but not a PyTorch checkpoint (it has no data.pkl)')
        _check_unpacked_size(archive, path)
        prefix = pkl[0][:-len('data.pkl')]
        byteorder = '<'
        if prefix + 'byteorder' in names:
            byteorder = '>' if archive.read(prefix + 'byteorder').strip() == b'big' else '<'
        storages = _Storages(byteorder)
        content = _SafeUnpickler(io.BytesIO(archive.read(pkl[0])), path, storages, os.path.getsize(path)).load()
        for key, nbytes in storages.roots():
            name = f'{prefix}data/{key}'
            if name not in names or archive.getinfo(name).file_size < nbytes:
                raise pickle.UnpicklingError(f'storage {key} is missing or short')
            with archive.open(name) as entry:
                storages.set_raw(key, entry.read(nbytes))
        resolve = _Resolver(path, archive.getinfo(pkl[0]).file_size, storages)
        return Checkpoint(resolve(content), FORMAT_ZIP)


def _check_unpacked_size(archive, path):
    unpacked = sum(info.file_size for info in archive.infolist())
    size = os.path.getsize(path)
    if unpacked > _UNPACK_LIMIT * size:
        raise CheckpointError(f'{path} is refused: its zip entries unpack to {unpacked:,} bytes, more than '
                              f'{_UNPACK_LIMIT} times the file\'s {size:,} (PyTorch stores them uncompressed)')


def _read_legacy(f, path):
    """The rest of a legacy torch file (an in-memory stream), positioned after its magic number."""
    def unpickle(storages=None):
        return _SafeUnpickler(f, path, storages).load()

    if unpickle() != LEGACY_PROTOCOL:
        raise CheckpointError(f'{path} uses a PyTorch serialisation protocol this reader does not know')
    unpickle()  # system info: torch writes legacy sizes and data little-endian whatever it says
    storages = _Storages('<')
    start = f.tell()
    content = unpickle(storages)
    pickle_size = f.tell() - start
    keys = unpickle()
    if not isinstance(keys, list) or set(map(str, keys)) != {key for key, _ in storages.roots()}:
        raise pickle.UnpicklingError('the storage key list does not match the storages')
    for key in map(str, keys):
        numel = int.from_bytes(_read_exact(f, 8), 'little')
        storages.set_raw(key, _read_exact(f, numel * storages.itemsize(key)))
    return Checkpoint(_Resolver(path, pickle_size, storages)(content), FORMAT_LEGACY)


def _read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise EOFError('the file ends early')
    return data


def _strip_jittor_trailer(data, path):
    """jt.save files end in SHA-1 + marker; verify and drop them."""
    if not data.endswith(_JITTOR_TRAILER):
        return data
    body, digest = data[:-28], data[-28:-8]
    if hashlib.sha1(body).digest() != digest:
        raise CheckpointError(f'{path} is corrupt: its Jittor checksum does not match its content')
    return body


def _read_pickles(path):
    with open(path, 'rb') as f:
        stream = io.BytesIO(_strip_jittor_trailer(f.read(), path))
    first = _SafeUnpickler(stream, path).load()
    if type(first) is int and first == LEGACY_MAGIC:
        return _read_legacy(stream, path)
    return Checkpoint(_Resolver(path, stream.tell())(first), FORMAT_PICKLE)


def _check_is_file(path):
    if not os.path.exists(path):
        raise CheckpointError(f'{path} does not exist')
    if os.path.isdir(path):
        raise CheckpointError(f'{path} is a folder, not a checkpoint file')
    if not os.access(path, os.R_OK):
        raise CheckpointError(f'{path} cannot be read (permission denied)')


def read_checkpoint(path):
    """Everything a torch or pickle checkpoint holds, tensors as numpy arrays, and its format.

    Raises CheckpointError for a missing, foreign, corrupt or unsafe file.
    """
    path = os.fspath(path)
    _check_is_file(path)
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f'{path} is empty')
    if head != _ZIP_MAGIC and head[:1] != _PICKLE_PROTO:
        raise CheckpointError(f'{path} is not a checkpoint (neither a PyTorch file nor a pickle)')
    try:
        return _read_zip(path) if head == _ZIP_MAGIC else _read_pickles(path)
    except CheckpointError:
        raise
    except _Refusal as refusal:
        raise CheckpointError(f'{path} is refused: {refusal}') from None
    except MemoryError:
        raise CheckpointError(f'{path} could not be loaded: its tensors need more memory than is free') from None
    except Exception as exc:  # any failure while parsing untrusted bytes means a damaged file
        raise CheckpointError(f'{path} is truncated or corrupt ({_reason(exc)})') from None


def _reason(exc):
    text = str(exc).strip().rstrip('.') or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + '...'


def _is_state_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()))


def _find_state_dict(content, path):
    """The dict of tensors itself, or the one a trainer checkpoint nests under a known key."""
    if _is_state_dict(content):
        return content
    if isinstance(content, dict):
        for key in NESTING_KEYS:
            if _is_state_dict(content.get(key)):
                return content[key]
    nested = ', '.join(f"'{k}'" for k in NESTING_KEYS)
    raise CheckpointError(f'{path} holds no model weights (neither a dict of tensors nor one under {nested})')


def _strip_data_parallel(state):
    # nn.DataParallel prefixes every key with 'module.'
    if all(k.startswith('module.') for k in state):
        return {k[len('module.'):]: v for k, v in state.items()}
    return state


def _module_naming(key):
    """Newer pytorch-pwc releases name every PWC-Net part net*, the original module*."""
    return '.'.join(_NET_PART.sub('module', part) for part in key.split('.'))


def is_flow_only(state):
    """True when every key is a PWC-Net key (either naming, below `[flow_net.]moduleNetwork.` or not)."""
    return all((m := _PWC_KEY.match(k)) is not None and m.group(1) in _PWC_PARTS for k in state)


def _model_key(key):
    if key.startswith('flow_net.'):
        return 'flow_net.' + _module_naming(key[len('flow_net.'):])
    return key


def _flow_key(key):
    return _module_naming(_PWC_OUTER.sub('', key))


def _as_weight(key, value, path):
    if value.dtype.kind == 'f':
        return np.ascontiguousarray(value, dtype=np.float32)
    if value.dtype.kind in 'iub':
        return value
    if value.dtype.kind == 'c':
        raise CheckpointError(f'{path} holds complex values ({value.dtype}) under {key}, where weights are '
                              'real numbers')
    raise CheckpointError(f'{path} holds a non-numeric array ({value.dtype}) under {key}')


def check_float_arrays(path, arrays, what):
    """Raise CheckpointError naming the first of `arrays` {name: array} that is not floating-point
    or not finite as float32; `what` names them for the user ('model weights', 'Adam moments')."""
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind != 'f':
            held = f'{value.dtype} values' if isinstance(value, np.ndarray) else f'a {type(value).__name__}'
            raise CheckpointError(f'{path} holds {held} in {name}, but {what} must be floating-point (float32)')
        with np.errstate(over='ignore'):  # float64 beyond float32's range becomes inf, and is refused
            finite = np.isfinite(value.astype(np.float32, copy=False)).all()
        if not finite:
            raise CheckpointError(f'{path} holds NaN or infinite values in {name}: {what} must be finite numbers')


def state_dict_from(content, path):
    """The model weights in a loaded checkpoint, named as the Jittor module they belong to names them.

    Accepts a plain state dict, one nested under 'state_dict' / 'model_state_dict' /
    'model', and 'module.' prefixes. A PWC-Net file (either naming, converted or not)
    comes back keyed as inside `Flow_PWC.moduleNetwork` ('moduleExtractor.moduleOne.0.weight'),
    a full model as PWC_Recons names it. Floating arrays become float32.
    """
    state = _strip_data_parallel(_find_state_dict(content, path))
    rename = _flow_key if is_flow_only(state) else _model_key
    return {rename(k): _as_weight(k, v, path) for k, v in state.items()}


def load_state_dict_file(path):
    """{key: float32 ndarray} from a `.pkl` of ours (or jt.save), a PyTorch `.pt` of either format,
    an `.npz` of arrays, or `embedded` (the weights shipped in the package)."""
    path = os.fspath(weights.resolve(path))
    if path.endswith('.npz'):
        _check_is_file(path)
        try:
            content = weights.read_npz(path)
        except Exception as exc:  # a damaged archive can fail in zipfile, zlib or numpy's header parser
            raise CheckpointError(f'{path} is not a readable .npz of arrays ({_reason(exc)})') from None
        return state_dict_from(content, path)
    return state_dict_from(read_checkpoint(path).content, path)


def load_pickle_safe(path):
    """Whatever a checkpoint-like pickle holds (trainer state), built by the restricted unpickler."""
    return read_checkpoint(path).content


def save_pickle_atomic(obj, path):
    """Pickle `obj` to `path` through utils.atomic, so `path` is never left half written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f'cannot write {path}: the folder {folder} does not exist')
    try:
        with atomic_file(path) as f:
            pickle.dump(obj, f, protocol=4)
    except OSError as exc:
        raise CheckpointError(f'cannot write {path}: {exc.strerror or exc}') from None


def save_state_dict_file(state, path):
    """Save {key: array} as our `.pkl`: a plain dict of contiguous float32 (or integer) arrays."""
    arrays = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f'state dict keys must be strings, not {type(key).__name__}')
        arrays[key] = _as_weight(key, np.asarray(value), path)
    save_pickle_atomic(arrays, path)


def load_flow_state_dict_file(path):
    """PWC-Net weights keyed as inside `Flow_PWC.moduleNetwork` ('moduleExtractor.moduleOne.0.weight', ...).

    From a PWC-Net file in either naming, its converted `.pkl`, or a full Self-Blind-VSR
    checkpoint (its flow_net part).
    """
    state = load_state_dict_file(path)
    if is_flow_only(state):
        return state
    flow = {k[len(FLOW_PREFIX):]: v for k, v in state.items() if k.startswith(FLOW_PREFIX)}
    if not flow:
        raise CheckpointError(f'{os.fspath(path)} holds no PWC-Net weights')
    return flow

