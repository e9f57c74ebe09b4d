"""Train (or with --test_only evaluate) Self-Blind-VSR: `sbvsr-train --template NAME [options]`.

Several processes: `mpirun -np N sbvsr-train ...` (Jittor's MPI mode) splits every
batch over the processes and averages their gradients; only rank 0 writes files.
"""
import sys
from pathlib import Path

from jittor_self_blind_vsr.option import parse_args
from jittor_self_blind_vsr.runtime import current_device, import_jittor, seed_everything, show_jittor_log
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.cli import UserError, run_command

# Looked up in --pretrain_models_dir, in this order (.pt and .pytorch are PyTorch files,
# converted in memory).
FLOW_WEIGHT_NAMES = ('network-default.pkl', 'network-default.pt', 'network-default.pytorch')


class StartError(UserError, ValueError):
    """The run cannot start as asked; the message is one sentence."""


def flow_pretrain_file(args, needed):
    """PWC-Net's initial weights for a fresh run, '.' when none are wanted."""
    if not needed:
        return '.'
    folder = Path(args.pretrain_models_dir)
    for name in FLOW_WEIGHT_NAMES:
        if (folder / name).is_file():
            return str(folder / name)
    if args.random_flow_init:
        return '.'
    raise StartError(f'PWC-Net initial weights not found: put network-default.pkl (or .pt) into {folder}/ '
                     f'(see docs/training.md), or pass --random_flow_init to start the flow network '
                     f'from random weights')


def build_model(args, ckp):
    from jittor_self_blind_vsr.model import load_checked
    from jittor_self_blind_vsr.model.specification import flow_of_state, model_from_options
    from jittor_self_blind_vsr.utils.checkpoint import load_state_dict_file
    fresh = not ckp.continuing and not args.test_only and args.pre_train == '.'
    net = model_from_options(args, flow_pretrain_file(args, fresh and args.flow == 'pwc'), current_device())
    weights = args.pre_train if args.pre_train != '.' else None
    if weights is None and args.test_only:
        weights = ckp.model_path('best')
    if weights is not None:
        ckp.write_log(f'Loading model from {weights}')
        state = load_state_dict_file(weights)
        flow = flow_of_state(state)
        if flow not in (None, args.flow):
            raise StartError(f'{weights} is a model with --flow {flow}, but the run is set for --flow {args.flow}: '
                             f'add --flow {flow}')
        load_checked(net, state, weights)
    return net


def run(args):
    jt = import_jittor(args.device, args.precision)
    args.cpu = current_device() == 'cpu'
    seed_everything(args.seed)
    from jittor_self_blind_vsr.data import Data
    from jittor_self_blind_vsr.logger.logger import Logger
    from jittor_self_blind_vsr.loss import Loss
    from jittor_self_blind_vsr.trainer.trainer_flow_video import Trainer_Flow_Video

    # Everything that can refuse the request runs before the experiment folder is touched.
    ckp = Logger(args, is_main=jt.rank == 0)
    loss = None if args.test_only else Loss(args.loss, ksize=args.ksize, scale=args.scale)
    net = build_model(args, ckp)
    if jt.in_mpi:
        net.mpi_param_broadcast(root=0)  # every rank starts from rank 0's weights
    loader = Data(args)
    try:
        ckp.start()
        trainer = Trainer_Flow_Video(args, loader, net, loss, ckp)
        ckp.write_config(trainer.epoch)
        while not trainer.terminate():
            trainer.train()
            trainer.test()
    except KeyboardInterrupt as error:
        error.kept = ckp.kept()
        ckp.write_log(f'Interrupted ({interrupt.signal_name(error)}): {error.kept}', echo=False)
        raise
    finally:
        ckp.done()


def train(argv):
    args = parse_args(argv)
    if args.verbose:
        show_jittor_log()
    import_jittor(args.device, args.precision)  # before any module that imports Jittor
    interrupt.install(loader_workers=args.n_threads > 0)
    run(args)


def main(argv=None):
    return run_command('sbvsr-train', lambda: train(argv))


if __name__ == '__main__':
    sys.exit(main())
