"""Does sbvsr-adapt help? PSNR/SSIM of a model before and after adapting to test clips with GT.

    python benchmarks/adapt_effect.py --model MODEL.pkl --clips CLIPS --output DIR \
        --steps 90 450 1350 [--per_clip] [--lr 2e-5] [--patch_size 64] [--batch_size 2] \
        [--train_clips OTHER_LR] [--timing_only]

CLIPS holds LR_blurdown_x4/<clip>/ and HR/<clip>/ (sbvsr-gene-dataset's layout). The model
adapts (sbvsr-adapt's own functions: adapt.adapt with its trainer) to all clips at once, or
with --per_clip to each clip alone, for the largest of --steps; the weights are saved after
each listed step count (a run of N steps with the same seed passes through exactly those
weights, so each snapshot is what `sbvsr-adapt --steps N` saves). Every snapshot and the
unadapted model then super-resolve the clips with sbvsr-infer (--border True). Prints
per-step CPU and wall seconds (the first two steps, which compile, apart) and a table of
average PSNR/SSIM per clip; writes DIR/summary.json. --train_clips is the control: the same
steps on other clips (the model's own training clips), so that the gain of adapting to the
test clips can be told apart from the gain of more training.
"""
import argparse
import json
import os
import statistics
import sys
import time

from jittor_self_blind_vsr import adapt, inference
from jittor_self_blind_vsr.infer.sources import collect_clips
from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file

COMPILING_STEPS = 2


class SnapshotBudget(adapt.Budget):
    """A step budget that saves the weights after each step count in `snapshots` {steps: path}
    and notes every step's CPU and wall seconds."""

    def __init__(self, steps, net, snapshots):
        super().__init__(steps, None)
        self.net, self.snapshots = net, snapshots
        self.times = []
        self.last = (time.process_time(), time.perf_counter())

    def after_step(self):
        now = (time.process_time(), time.perf_counter())
        self.times.append((now[0] - self.last[0], now[1] - self.last[1]))
        stop = super().after_step()
        if self.done in self.snapshots:
            save_state_dict_file(self.net.numpy_state_dict(), self.snapshots[self.done])
        self.last = (time.process_time(), time.perf_counter())
        return stop


def adapt_to(options, name, lr_path, output):
    """Adapt to the clip(s) at lr_path; returns ({steps: weights path}, per-step times)."""
    from jittor_self_blind_vsr.infer import restorer
    args = adapt.parse_args(['--model_path', options.model, '--input_path', lr_path, '--steps', str(max(options.steps)),
                             '--lr', str(options.lr), '--patch_size', str(options.patch_size),
                             '--batch_size', str(options.batch_size), '--device', 'cpu'])
    clips = collect_clips(args)
    net, config = restorer.load_model(args.input_model, args.scale, args.n_seq, args.align_corners)
    snapshots = {n: os.path.join(output, f'{name}_{n}steps.pkl') for n in options.steps}
    budget = SnapshotBudget(max(options.steps), net, snapshots)
    adapt.adapt(args, net, config, clips, budget)
    return snapshots, budget.times


def scores(options, lr_path, hr_path, model, output, name, label):
    """{clip: (avg PSNR, avg SSIM)} of `model` on the clip(s), through sbvsr-infer."""
    status = inference.main(['--input_path', lr_path, '--gt_path', hr_path, '--model_path', model,
                             '--result_path', output, '--dataset_name', name, '--blur_type', label,
                             '--border', 'True', '--device', 'cpu', '--save_image', 'False'])
    if status != 0:
        sys.exit(f'inference of {model} failed')
    with open(os.path.join(output, name, label, 'metrics.json'), encoding='utf-8') as f:
        videos = json.load(f)['videos']
    return {clip: (v['avg_psnr'], v['avg_ssim']) for clip, v in videos.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--clips', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--steps', type=int, nargs='+', required=True)
    parser.add_argument('--per_clip', action='store_true')
    parser.add_argument('--lr', type=float, default=adapt.DEFAULT_LR)
    parser.add_argument('--patch_size', type=int, default=adapt.DEFAULT_PATCH)
    parser.add_argument('--batch_size', type=int, default=adapt.DEFAULT_BATCH)
    parser.add_argument('--train_clips', default=None,
                        help='a control: adapt on these LR clips (a folder of video folders) instead of the test '
                             'clips, then score on the test clips as usual')
    parser.add_argument('--timing_only', action='store_true', help='adapt and time the steps; score nothing')
    options = parser.parse_args()
    inference.start_jittor('cpu')
    os.makedirs(options.output, exist_ok=True)
    lr_root, hr_root = (os.path.join(options.clips, sub) for sub in ('LR_blurdown_x4', 'HR'))
    targets = [(c, os.path.join(lr_root, c), os.path.join(hr_root, c)) for c in sorted(os.listdir(lr_root))] \
        if options.per_clip and not options.train_clips else [('all', lr_root, hr_root)]
    summary = dict(model=os.path.abspath(options.model), lr=options.lr, patch_size=options.patch_size,
                   batch_size=options.batch_size, per_clip=options.per_clip, train_clips=options.train_clips, load_start=os.getloadavg(), results={})
    for name, lr_path, hr_path in targets:
        snapshots, times = adapt_to(options, name, options.train_clips or lr_path, options.output)
        warm = times[COMPILING_STEPS:] or times
        timing = dict(cpu_per_step=statistics.mean(t[0] for t in warm),
                      wall_per_step=statistics.mean(t[1] for t in warm), first_steps=times[:COMPILING_STEPS], load=os.getloadavg())
        print(f'{name}: CPU {timing["cpu_per_step"]:.3f} s/step, wall {timing["wall_per_step"]:.3f} s/step '
              f'(steps {COMPILING_STEPS + 1}-{len(times)}), load {timing["load"]}')
        if options.timing_only:
            continue
        rows = {0: scores(options, lr_path, hr_path, options.model, options.output, name, 'steps0')}
        for steps, path in snapshots.items():
            rows[steps] = scores(options, lr_path, hr_path, path, options.output, name, f'steps{steps}')
        summary['results'][name] = dict(timing=timing, scores=rows)
        with open(os.path.join(options.output, 'summary.json'), 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=1)
    print('| target | clip | steps | PSNR | SSIM |')
    print('|---|---|---|---|---|')
    for name, result in summary['results'].items():
        for steps, per_clip in result['scores'].items():
            for clip, (psnr, ssim) in per_clip.items():
                print(f'| {name} | {clip} | {steps} | {psnr:.3f} | {ssim:.4f} |')


if __name__ == '__main__':
    main()
