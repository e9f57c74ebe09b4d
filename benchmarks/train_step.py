"""Time one training step (forward, backward, Adam) of the published configuration.

    python benchmarks/train_step.py [--batch 2] [--patch 40] [--steps 5] [--device cpu]

Batch 2, LR patch 40x40, 5 frames, n_feat 128, 3 + 20 residual blocks: the reference
in docs/porting_notes ("Training step, batch 2, LR patch 40x40") is about 1.5 s for the
PyTorch original on 2 CPU cores. The first steps compile Jittor's kernels and are not timed.

oneDNN convolves with its direct kernel by default (runtime.ONEDNN_MAX_CPU_ISA);
`DNNL_MAX_CPU_ISA=ALL` in the environment times its faster brgconv kernel (docs/model.md).
"""
import argparse
import statistics
import time
from types import SimpleNamespace


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--patch', type=int, default=40, help='LR patch size')
    parser.add_argument('--steps', type=int, default=5, help='timed steps')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps (kernel compilation)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='cpu')
    parser.add_argument('--template', default='Self_Blind_VSR_Realistic')
    parser.add_argument('--precision', choices=('exact', 'fast'), default='exact')
    return parser.parse_args(argv)


def make_trainer(options):
    from jittor_self_blind_vsr.logger.logger import Logger
    from jittor_self_blind_vsr.loss import Loss
    from jittor_self_blind_vsr.model.specification import model_from_options
    from jittor_self_blind_vsr.option import parse_args
    from jittor_self_blind_vsr.trainer.trainer_flow_video import Trainer_Flow_Video

    args = parse_args(['--template', options.template, '--device', options.device, '--precision', options.precision,
                       '--experiment_dir', '/nonexistent-benchmark-dir'])
    net = model_from_options(args)
    loader = SimpleNamespace(loader_train=None, loader_test=None)
    trainer = Trainer_Flow_Video(args, loader, net, Loss(args.loss, args.ksize, args.scale), Logger(args))
    trainer.set_epoch_lr(1)
    return trainer, args


def main(argv=None):
    options = parse(argv)
    from jittor_self_blind_vsr.runtime import import_jittor, seed_everything
    jt = import_jittor(options.device, options.precision)
    seed_everything(0)
    trainer, args = make_trainer(options)
    trainer.model.train()
    x = jt.rand(options.batch, args.n_sequence, args.n_colors, options.patch, options.patch)
    times = []
    for step in range(options.warmup + options.steps):
        start = time.perf_counter()
        trainer.train_step(x)
        jt.sync_all(True)
        if step >= options.warmup:
            times.append(time.perf_counter() - start)
    print(f'training step, {options.template} model, batch {options.batch}, LR patch '
          f'{options.patch}x{options.patch}, {jt.flags.use_cuda and "cuda" or "cpu"}, {options.precision}: '
          f'median {statistics.median(times):.3f} s, min {min(times):.3f} s over {len(times)} steps')


if __name__ == '__main__':
    main()
