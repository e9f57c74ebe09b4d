"""Time the port at --precision exact and fast against the original PyTorch code in float32
and under torch.autocast('cpu', dtype=torch.bfloat16), alternating, in one run.

    python benchmarks/precision.py --original /path/to/Self-Blind-VSR [--size 180x320]
        [--rounds 3] [--task forward train] [--json out.json]

Each round runs every configuration once, each task in a fresh process (the precision is
fixed when Jittor starts, torch and Jittor each own their thread pool, and a training
process has not held an inference's buffers), in an order rotated from round to round so
that none always follows the same neighbour. A process builds the
published configuration with seeded random weights (the cost does not depend on their
values), runs one untimed pass (Jittor compiles its kernels) and then `--repeat` timed
ones; it reports wall seconds and the CPU seconds it used (all threads), and the load
average is read before and after it.

forward: `infer` of one 5-frame LR window of --size (batch 1). train: one training step
(forward of the `train` mode, the loss of Trainer_Flow_Video, backward, Adam) on a batch
of --batch clips of --patch LR pixels square. The original runs through
tests/fixtures/make_parity_fixtures.py's stand-ins for its CUDA-only parts (the cost
volume written with torch ops, `.cuda()` a no-op), with align_corners=True.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PORT = ('exact', 'fast')
ORIGINAL = ('torch-fp32', 'torch-bf16')
CONFIGS = PORT + ORIGINAL


def parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 180x320, not {text!r}')
    return h, w


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--original', type=Path, help='checkout of csbhr/Self-Blind-VSR (the folder holding code/)')
    parser.add_argument('--size', type=parse_size, default=(180, 320), help='LR size of the forward')
    parser.add_argument('--batch', type=int, default=2, help='training clips per step')
    parser.add_argument('--patch', type=int, default=40, help='LR patch of the training step')
    parser.add_argument('--task', nargs='+', choices=('forward', 'train'), default=['forward', 'train'])
    parser.add_argument('--configs', nargs='+', choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=1, help='timed passes per process')
    parser.add_argument('--json', help='also write every measurement to this file')
    parser.add_argument('--worker', choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and any(c in ORIGINAL for c in args.configs) and args.original is None:
        parser.error('--original is needed to time the original PyTorch code')
    return args


def timed(step, repeat):
    """(wall seconds, CPU seconds) of each of `repeat` calls after one untimed call."""
    step()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def port_worker(args, task):
    from jittor_self_blind_vsr.runtime import import_jittor, seed_everything
    jt = import_jittor('cpu', args.worker)
    sys.path.insert(0, str(REPO / 'benchmarks'))
    if task == 'forward':
        from forward import build
        net = build(jt, 0)
        x = jt.array(np.random.default_rng(0).random((1, 5, 3) + args.size, dtype=np.float32))

        # No jt.gc() between passes: sbvsr-infer keeps Jittor's allocator warm from window to
        # window, and freeing its cache would time page faults of fresh memory instead.
        def step():
            with jt.no_grad():
                out, _ = net({'x': x, 'mode': 'infer'})
                jt.sync([out['recons'], out['est_kernel']])
        return timed(step, args.repeat)
    from train_step import make_trainer
    seed_everything(0)
    trainer, _ = make_trainer(argparse.Namespace(template='Self_Blind_VSR_Realistic', device='cpu',
                                                 precision=args.worker))
    trainer.model.train()
    x = jt.rand(args.batch, 5, 3, args.patch, args.patch)

    def train():
        trainer.train_step(x)
        jt.sync_all(True)
    train()  # a second untimed step: the first ones compile Adam's and the backward's kernels
    return timed(train, args.repeat)


def original_worker(args, task):
    import torch
    sys.path.insert(0, str(REPO / 'tests' / 'fixtures'))
    sys.path.insert(0, str(REPO / 'tests'))
    import make_parity_fixtures as harness
    from jittor_self_blind_vsr.model.specification import PUBLISHED_CONFIG
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    original = harness.import_original(harness.find_code_dir(args.original))
    net = original.pwc_recons.PWC_Recons(**PUBLISHED_CONFIG, flow_pretrain_fn='.', device='cpu')
    rng = np.random.default_rng(0)
    with torch.no_grad():  # the same scale as benchmarks/forward.py's weights
        for value in net.state_dict().values():
            fan_in = max(1, value[0].numel()) if value.dim() >= 2 else 10000
            value.copy_(torch.from_numpy(rng.standard_normal(tuple(value.shape)).astype(np.float32) / np.sqrt(fan_in)))
    autocast = torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.worker == 'torch-bf16')
    with harness.on_cpu(original, align_corners=True):
        if task == 'forward':
            net.eval()
            x = torch.from_numpy(np.random.default_rng(0).random((1, 5, 3) + args.size, dtype=np.float32))

            def step():
                with torch.no_grad(), autocast:
                    net({'x': x, 'mode': 'infer'})
            return timed(step, args.repeat)
        net.train()
        loss = harness.TrainLoss(original)
        optimizer = harness.make_optimizer(original, net)
        x = torch.rand(args.batch, 5, 3, args.patch, args.patch)

        def train():
            with autocast:
                output, _ = net({'x': x, 'mode': 'train'})
                total, _ = loss(output)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
        train()
        return timed(train, args.repeat)


def worker(args):
    results = {}
    for task in args.task:
        run = port_worker if args.worker in PORT else original_worker
        walls, cpus = run(args, task)
        results[task] = {'wall': walls, 'cpu': cpus}
    print('RESULT ' + json.dumps(results), flush=True)
    return 0


def run_one(args, config, task):
    command = [sys.executable, __file__, '--worker', config, '--size', f'{args.size[0]}x{args.size[1]}',
               '--batch', str(args.batch), '--patch', str(args.patch), '--repeat', str(args.repeat),
               '--task', task]
    if args.original is not None:
        command += ['--original', str(args.original)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')])),
               log_silent='1')
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith('RESULT ')]
    if done.returncode or not lines:
        raise SystemExit(f'{config} failed (exit {done.returncode}):\n{done.stdout[-3000:]}')
    result = json.loads(lines[-1][len('RESULT '):])
    result['load'] = [load_before, os.getloadavg()[0]]
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    print(f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, {os.cpu_count()} CPUs, LR forward '
          f'{args.size[0]}x{args.size[1]}, train batch {args.batch} patch {args.patch}', flush=True)
    rows = []
    configs = list(args.configs)
    for round_index in range(args.rounds):
        order = configs[round_index % len(configs):] + configs[:round_index % len(configs)]
        for config in order:
            result = {}
            for task in args.task:
                done = run_one(args, config, task)
                result[task] = done[task]
                result['load'] = [result.get('load', done['load'])[0], done['load'][1]]
            rows.append(dict(round=round_index, config=config, **result))
            text = ', '.join(f'{task} {np.mean(result[task]["wall"]):.3f} s wall / {np.mean(result[task]["cpu"]):.3f} s CPU'
                             for task in args.task)
            print(f'round {round_index + 1} {config:10s}: {text}; load {result["load"][0]:.1f} -> '
                  f'{result["load"][-1]:.1f}', flush=True)
    print('medians over rounds (wall; ratio to torch-fp32 where timed):')
    for task in args.task:
        medians = {c: float(np.median([np.mean(r[task]['wall']) for r in rows if r['config'] == c])) for c in configs}
        reference = medians.get('torch-fp32')
        for config in configs:
            ratio = f' ({medians[config] / reference:.2f}x)' if reference else ''
            print(f'  {task:8s} {config:10s} {medians[config]:.3f} s{ratio}')
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
