"""Adapt a model to your own clip, then super-resolve the clip with it: `sbvsr-adapt`.

1. Everything that can refuse the request is checked before any work: the model file,
   the clip, the results folder and where the adapted weights go.
2. The model is fine-tuned self-supervised on the LR clip alone, with the paper's own
   objective: sbvsr-train's trainer on VIDEO_LR patches of the clip, for --steps
   optimiser steps and/or --minutes of wall time, whichever ends first.
3. The adapted weights are written atomically next to the results,
   OUT/<dataset_name>/<blur_type>.pkl, with a record <blur_type>.json (options, steps,
   time, losses, and the SHA-256 of the input and adapted weights).
4. The clip is super-resolved with them by sbvsr-infer's code path into
   OUT/<dataset_name>/<blur_type>/ (every sbvsr-infer option applies).

The input weights file is only read. The adapted weights replace only a file this tool
wrote (its record names its SHA-256) and never the input. docs/adaptation.md explains
the options' defaults and the measured effect.
"""
import contextlib
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
from tqdm import tqdm

from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer.results import check_destination, left_behind, results_folder, sha256_of_file
from jittor_self_blind_vsr.infer.sources import collect_clips, quiet_ffmpeg
from jittor_self_blind_vsr.option import ENDLESS_EPOCHS, positive_float, positive_int, seed_int
from jittor_self_blind_vsr.runtime import show_jittor_log
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
from jittor_self_blind_vsr.utils.cli import UserError, run_command
from jittor_self_blind_vsr.utils.image_io import write_image

PROGRAM = 'sbvsr-adapt'  # also the record's 'tool' field, which marks the weights beside it as this tool's
DEFAULT_MINUTES = 5.0
DEFAULT_LR = 2e-5
DEFAULT_PATCH = 64
DEFAULT_BATCH = 2
# Batches per trainer epoch; the epoch is only the unit of the trainer's log here (the
# learning rate is constant and the budget ends an epoch early).
EPOCH_BATCHES = 100


class AdaptError(UserError):
    """The adaptation cannot run as asked; the message is one sentence."""


def build_parser():
    parser = inference.build_parser()
    parser.prog = PROGRAM
    parser.description = ('Fine-tune a Self-Blind-VSR model self-supervised on your own LR clip, then '
                          'super-resolve the clip with the adapted weights. Every sbvsr-infer option applies; '
                          '--model_path is the model to start from (it is never modified).')
    parser.set_defaults(result_path='adapt_results', blur_type='adapted')
    group = parser.add_argument_group('adaptation')
    group.add_argument('--steps', type=positive_int, default=None,
                       help='optimiser steps to adapt for (with --minutes: whichever ends first)')
    group.add_argument('--minutes', type=positive_float, default=None,
                       help=f'wall-clock minutes to adapt for, counted after the first step, which compiles on a '
                            f'cold Jittor cache (default '
                            f'{DEFAULT_MINUTES:g} when --steps is not given)')
    group.add_argument('--lr', type=positive_float, default=DEFAULT_LR,
                       help=f'learning rate, constant (default {DEFAULT_LR:g}; PWC-Net keeps sbvsr-train\'s 1e-6)')
    group.add_argument('--patch_size', type=positive_int, default=DEFAULT_PATCH,
                       help=f'LR training patch side, at most the frame\'s (default {DEFAULT_PATCH})')
    group.add_argument('--batch_size', type=positive_int, default=DEFAULT_BATCH,
                       help=f'patches per step (default {DEFAULT_BATCH})')
    group.add_argument('--seed', type=seed_int, default=1, help='seed of the patches drawn (default 1)')
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = inference.parse_args(argv, parser)
    if not args.result_path:
        parser.error("argument --result_path: must name a folder, not ''")
    if args.steps is None and args.minutes is None:
        args.minutes = DEFAULT_MINUTES
    args.input_model = args.model_path
    return args


def weights_paths(args):
    """(adapted weights, their record): OUT/<dataset_name>/<blur_type>.pkl and .json, beside the results."""
    final = results_folder(args)
    return final + '.pkl', final + '.json'


def read_record(path):
    """The record this tool wrote at `path`, or None when there is none or it is not this tool's."""
    try:
        with open(path, encoding='utf-8') as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get('tool') == PROGRAM else None


def check_weights_destination(args):
    """Refuse weights or a record that would replace the input model or a file this tool did not write."""
    weights, record_path = weights_paths(args)
    folder = os.path.dirname(weights)
    while folder and not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if folder and not os.path.isdir(folder):
        raise AdaptError(f'{folder} is not a folder, so the adapted weights cannot be written into it; give another '
                         f'--result_path')
    if os.path.lexists(weights) and os.path.exists(args.input_model) and os.path.samefile(weights, args.input_model):
        raise AdaptError(f'the adapted weights would overwrite the input model {args.input_model}; give another '
                         f'--result_path, --dataset_name or --blur_type')
    if os.path.islink(record_path):
        raise AdaptError(f'{record_path} is a link, and {PROGRAM} writes nothing over links; remove it or give '
                         f'another --result_path, --dataset_name or --blur_type')
    record = read_record(record_path)
    if os.path.lexists(record_path) and record is None:
        raise AdaptError(f'{record_path} exists and was not written by {PROGRAM}, so it is not replaced; give '
                         f'another --result_path, --dataset_name or --blur_type')
    if os.path.lexists(weights):
        ours = (record is not None and not os.path.islink(weights) and os.path.isfile(weights)
                and sha256_of_file(weights) == record.get('adapted_model_sha256'))
        if not ours:
            raise AdaptError(f'{weights} exists and is not adapted weights written by {PROGRAM} (its record '
                             f'{record_path} does not name its SHA-256), so it is not replaced; give another '
                             f'--result_path, --dataset_name or --blur_type')


@contextlib.contextmanager
def training_set(clips):
    """A temporary folder of video folders holding the LR frames of `clips`, as VIDEO_LR reads them:
    a link to each folder of frames, video files decoded to PNG. Removed afterwards."""
    with tempfile.TemporaryDirectory(prefix='sbvsr-adapt-') as root:
        for clip in clips:
            target = os.path.join(root, clip.name)
            if clip.lr.paths is not None:
                os.symlink(os.path.dirname(os.path.abspath(clip.lr.paths[0])), target)
                continue
            os.mkdir(target)
            reader = clip.lr.reader()
            try:
                for index in range(clip.lr.count):
                    write_image(os.path.join(target, f'{clip.lr.frame_name(index)}.png'), reader.read(index))
            finally:
                reader.close()
        yield root


def training_options(args, config, data_dir, clips):
    """sbvsr-train's options for adapting the model of `config` on the frames in `data_dir`."""
    from jittor_self_blind_vsr.option import parse_args as train_options
    patch = min([args.patch_size] + [min(clip.lr.size) for clip in clips])
    return train_options([
        '--data_train', 'VIDEO_LR', '--dir_data', data_dir, '--data_test', 'VIDEO_LR', '--dir_data_test', data_dir,
        '--n_frames_per_video', str(max(clip.lr.count for clip in clips)), '--patch_size', str(patch),
        '--batch_size', str(args.batch_size), '--lr', str(args.lr), '--lr_decay', str(ENDLESS_EPOCHS),
        '--test_every', str(EPOCH_BATCHES), '--print_every', str(EPOCH_BATCHES), '--epochs', '0',
        '--n_threads', '0', '--seed', str(args.seed), '--device', args.device,
        '--align_corners', str(args.align_corners), '--save_images', 'false',
        '--n_feat', str(config['n_feat']), '--extra_RBS', str(config['extra_RBS']),
        '--recons_RBS', str(config['recons_RBS']), '--ksize', str(config['ksize']), '--scale', str(config['scale'])])


class Budget:
    """Ends adaptation after `steps` optimiser steps or `seconds` of wall time, whichever comes first;
    the step under way when the time runs out is completed. The time is counted from the end of
    the first step: on a cold Jittor cache that step compiles the training kernels, which took
    minutes on 2 cores and would otherwise eat a short budget whole."""

    def __init__(self, steps, seconds):
        self.steps, self.seconds = steps, seconds
        self.done = 0
        self.first_step = None  # wall seconds of the first step, compiling included
        self.wall_start, self.cpu_start = time.perf_counter(), time.process_time()

    def wall(self):
        return time.perf_counter() - self.wall_start

    def cpu(self):
        """CPU seconds of the whole process (all threads) since the start."""
        return time.process_time() - self.cpu_start

    def counted(self):
        """Wall seconds counted against the budget: those after the first step."""
        return 0.0 if self.first_step is None else self.wall() - self.first_step

    def exhausted(self):
        return ((self.steps is not None and self.done >= self.steps)
                or (self.seconds is not None and self.counted() >= self.seconds))

    def after_step(self):
        """The trainer's stop hook."""
        self.done += 1
        if self.first_step is None:
            self.first_step = self.wall()
        return self.exhausted()


class AdaptLog:
    """The trainer's logger (`ckp`) for a run without an experiment folder: lines are printed and kept."""
    continuing = False
    is_main = True

    def __init__(self):
        self.lines = []

    def write_log(self, text, echo=True):
        self.lines.append(text)
        if echo:
            tqdm.write(text)


def diverged(args, cause):
    return AdaptError(f'training diverged ({cause} with --lr {args.lr:g}; try a smaller --lr), so no adapted weights '
                      f'were saved and the input model {args.input_model} is unchanged')


def stop_when_diverged(train_step, optimizer, args):
    """`train_step`, raising as soon as a loss is NaN or infinite: the weights are then no longer
    numbers, and the rest of the budget would be spent on them."""
    def step(x):
        values = train_step(x)
        bad = next((name for name, value in values.items() if not math.isfinite(value)), None)
        if bad is not None:
            raise diverged(args, f'the {bad} loss became {values[bad]} at step {int(optimizer.n_step)}')
        return values
    return step


def check_finite(args, state):
    """Refuse weights that the last step made NaN or infinite (its loss was computed before it)."""
    bad = next((name for name, value in state.items() if not np.isfinite(value).all()), None)
    if bad is not None:
        raise diverged(args, f'the last step left NaN or infinite values in {bad}')


def adapt(args, net, config, clips, budget=None):
    """Fine-tune `net` in place on the LR frames of `clips` within `budget` (default: the one of --steps
    and --minutes, started now); returns the run's record."""
    from jittor_self_blind_vsr.data import Data
    from jittor_self_blind_vsr.loss import Loss
    from jittor_self_blind_vsr.trainer.trainer_flow_video import Trainer_Flow_Video
    with training_set(clips) as data_dir:
        options = training_options(args, config, data_dir, clips)
        log = AdaptLog()
        loss = Loss(options.loss, ksize=options.ksize, scale=options.scale)
        trainer = Trainer_Flow_Video(options, Data(options), net, loss, log)
        trainer.train_step = stop_when_diverged(trainer.train_step, trainer.optimizer, args)
        budget = budget or Budget(args.steps, None if args.minutes is None else args.minutes * 60)
        while not budget.exhausted():
            trainer.train(stop=budget.after_step)
    net.eval()
    return dict(steps=int(trainer.optimizer.n_step), wall_seconds=round(budget.wall(), 3),
                first_step_seconds=round(budget.first_step or 0.0, 3), cpu_seconds=round(budget.cpu(), 3), patch_size=options.patch_size, batch_size=options.batch_size, lr=options.lr, flow_lr=options.flow_lr,
                seed=options.seed, loss=options.loss,
                epoch_mean_losses={name: values for name, values in trainer.logs.items()})


def save_weights(args, state, run):
    """The adapted weights `state`, then their record (which names their SHA-256), each written atomically;
    an interrupt waits until both are written."""
    from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
    weights, record_path = weights_paths(args)
    with interrupt.deferred():
        os.makedirs(os.path.dirname(weights), exist_ok=True)
        save_state_dict_file(state, weights)
        record = dict(tool=PROGRAM, input_model=os.path.abspath(args.input_model),
                      input_model_sha256=args.input_sha256, adapted_model=os.path.abspath(weights),
                      adapted_model_sha256=sha256_of_file(weights), input_path=os.path.abspath(args.input_path),
                      minutes=args.minutes, max_steps=args.steps, **run)
        write_bytes_atomic(record_path, (json.dumps(record, indent=1) + '\n').encode('utf-8'))
    return weights


def run_adaptation(args, state):
    """Check, adapt, save the weights (noted in `state`), super-resolve; returns the results folder."""
    inference.check_args(args)
    check_destination(args)
    check_weights_destination(args)
    clips = collect_clips(args)
    for clip in clips:
        if clip.lr.count < args.n_seq:
            raise AdaptError(f'video {clip.name} has {clip.lr.count} frames, fewer than the {args.n_seq} of one '
                             f'training window')
    inference.check_model_exists(args.input_model)
    if args.default_model_line:
        print(f'{PROGRAM}: {args.default_model_line}', file=sys.stderr, flush=True)
        args.default_model_line = None  # said once, not again by the inference below
    args.input_sha256 = sha256_of_file(args.input_model)
    inference.start_jittor(args.device, args.precision)
    from jittor_self_blind_vsr.infer import restorer
    net, config = restorer.load_model(args.input_model, args.scale, args.n_seq, args.align_corners)
    run = adapt(args, net, config, clips)
    if sha256_of_file(args.input_model) != args.input_sha256:
        raise AdaptError(f'the input model {args.input_model} changed while adapting (another program wrote it); '
                         f'no adapted weights were saved')
    adapted = net.numpy_state_dict()
    check_finite(args, adapted)
    print(f'Adapted for {run["steps"]} steps in {run["wall_seconds"]:.0f} s ({run["cpu_seconds"]:.0f} CPU seconds); '
          f'the first step took {run["first_step_seconds"]:.0f} s of them, Jittor\'s compiling included, and is not '
          f'counted in --minutes')
    state['weights'] = save_weights(args, adapted, run)
    print(f'adapted weights: {state["weights"]}')
    args.model_path = state['weights']
    return inference.infer(args)


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        show_jittor_log()
    quiet_ffmpeg()
    final = results_folder(args)
    state = {}

    def kept():
        if 'weights' in state:
            return f'the adapted weights {state["weights"]} are complete; {left_behind(args)}'
        return f'no adapted weights were written and the input model {args.input_model} is unchanged; ' \
               f'{left_behind(args)}'

    def work():
        print(f'results: {run_adaptation(args, state)}')
    return run_command(PROGRAM, work, kept=kept, write_target=f'the results in {final}')


if __name__ == '__main__':
    sys.exit(main())
