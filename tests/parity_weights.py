"""Seeded weights of the parity fixtures (the recipe in tests/fixtures/parity/README.md)."""
import numpy as np


def read_keys(keys_tsv_path):
    """[(key, shape)] of a CONFIG_keys.tsv file, in file order."""
    entries = []
    with open(keys_tsv_path) as handle:
        for line in handle:
            line = line.rstrip('\n')
            if line:
                key, shape = line.split('\t')
                entries.append((key, tuple(int(n) for n in shape.split('x'))))
    return entries


def seeded_state(keys_tsv_path, seed):
    """{key: float32 ndarray} drawn exactly as the fixtures' weights were."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in read_keys(keys_tsv_path):
        a = rng.standard_normal(shape).astype(np.float32)
        if len(shape) >= 2:
            a *= np.float32(1.0 / np.sqrt(int(np.prod(shape)) // shape[0]))
        else:
            a *= np.float32(0.01)
        state[key] = a
    return state
