"""The embedded model: Self-Blind-VSR weights shipped inside the package.

The model file name `embedded` stands for them wherever a model file is read
(`sbvsr-infer --model_path embedded`, `sbvsr-train --pre_train embedded`, sbvsr-demo's
default); a file of that name in the working folder is then given as `./embedded`.
They are stored in `embedded.npz` as float16, half the size of float32, and read back as
float32: every figure quoted for the embedded model is measured with these rounded values.
docs/demo.md says how the model was trained (data, command, time) and how well it does.
"""
import os

import numpy as np

EMBEDDED = 'embedded'
STORED_DTYPE = np.float16


def embedded_path():
    """The shipped weights file (inside the installed package)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'embedded.npz')


def resolve(path):
    """The file a model path names: the shipped weights for `embedded`, else `path` itself."""
    return embedded_path() if os.fspath(path) == EMBEDDED else path


def save_npz(state, path):
    """Write {key: float array} as a compressed .npz of float16 arrays (the shipped format)."""
    with open(path, 'xb') as f:
        np.savez_compressed(f, **{key: np.asarray(value).astype(STORED_DTYPE) for key, value in state.items()})


def read_npz(path):
    """{key: array} of an .npz of arrays (no pickled objects)."""
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}
