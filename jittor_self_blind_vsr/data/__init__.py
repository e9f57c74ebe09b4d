"""Dataset factory: `Data(args)` builds the training and test loaders by dataset name,
as the original's `data.Data` (a Jittor Dataset is its own loader)."""
from importlib import import_module

from jittor_self_blind_vsr.data.videodata import DatasetError
from jittor_self_blind_vsr.data.videodata_online_realistic import VIDEODATA_ONLINE_REALISTIC

# name -> module; the class is the upper-case name, as in the original
DATASETS = ('REDS_BLURDOWN_GAUSSIAN', 'REDS_BLURDOWN_REALISTIC', 'REDS_HRLR', 'VIDEO_LR')

__all__ = ['DATASETS', 'Data', 'DatasetError', 'make_dataset']


def make_dataset(name, args, train):
    """The dataset called `name` (case-insensitive), reading args.dir_data (train) or args.dir_data_test."""
    if name.upper() not in DATASETS:
        raise DatasetError(f'unknown dataset {name!r}; choose one of {", ".join(DATASETS)}')
    module = import_module(f'{__name__}.{name.lower()}')
    return getattr(module, name.upper())(args, name=name, train=train)


class Data:
    """loader_train (None with args.test_only): batch_size, shuffled, n_threads workers;
    loader_test: batch 1 in order, n_threads workers."""

    def __init__(self, args):
        self.args = args
        self.data_train = args.data_train
        self.data_test = args.data_test
        self.loader_train = None
        if not args.test_only:
            train_set = make_dataset(args.data_train, args, train=True)
            if args.repeat_worker_kernels and not isinstance(train_set, VIDEODATA_ONLINE_REALISTIC):
                raise DatasetError(f'--repeat_worker_kernels repeats realistic online kernels, which '
                                   f'{args.data_train} does not draw (use REDS_BLURDOWN_REALISTIC)')
            self.loader_train = train_set.set_attrs(batch_size=args.batch_size, shuffle=True,
                                                    num_workers=args.n_threads)
        self.loader_test = make_dataset(args.data_test, args, train=False).set_attrs(
            batch_size=1, shuffle=False, num_workers=args.n_threads)
