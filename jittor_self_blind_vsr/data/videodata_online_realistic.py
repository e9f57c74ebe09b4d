import numpy as np

from jittor_self_blind_vsr.data.videodata_online import VIDEODATA_ONLINE
from jittor_self_blind_vsr.utils.degradation import random_realistic_kernel


class VIDEODATA_ONLINE_REALISTIC(VIDEODATA_ONLINE):
    """Online degradation with random anisotropic, noisy 13x13 kernels.

    Kernels come from NumPy's global generator: fresh ones every epoch. With
    `--repeat_worker_kernels` they come from a generator seeded with `--seed` that is restarted
    at every epoch, and the loader's workers are forked anew from it, so every worker (or the
    main process with `--n_threads 0`) draws the same kernel sequence in every epoch: the
    structure of the original's kernels, whose PyTorch 0.4.1 loader forked its workers each
    epoch from the same NumPy state and never re-seeded it.
    """

    def __init__(self, args, name='', train=True):
        super().__init__(args, name=name, train=train)
        self.repeat_kernels = args.repeat_worker_kernels
        self._kernel_rng = np.random.RandomState(args.seed)

    def __iter__(self):
        if self.repeat_kernels:
            # Jittor keeps its workers (and lets them start the next epoch early); end them instead.
            self.reset()
            self._kernel_rng = np.random.RandomState(self.args.seed)
        yield from super().__iter__()

    def get_blur_kernel(self):
        return random_realistic_kernel(self._kernel_rng if self.repeat_kernels else np.random, scale=self.args.scale)
