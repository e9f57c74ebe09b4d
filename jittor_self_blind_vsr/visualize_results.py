"""Compare inference runs in charts: quality per video, per-frame PSNR, time breakdown, quality vs speed.

Reads any mix of our metrics.json, our inference_log.txt and the logs the original PyTorch
inference.py writes (`inference_log_<time>.txt`); a results folder stands for its
metrics.json (else inference_log.txt, else the original's one log). Run as
`sbvsr-visualize RUN RUN ... --output_dir charts` (docs/inference.md).
"""
import argparse
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Optional

from jittor_self_blind_vsr.utils.cli import UserError, run_command
from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic

# Seconds per frame, in our logs as in the original's: pre (reading the frames), forward (the
# network), post (the output fetched, scored and written); total is their sum.
TIME_KEYS = ('pre_time', 'forward_time', 'post_time', 'total_time')
_NUMBER = r'([-+]?(?:inf|nan|[\d.]+(?:e[-+]?\d+)?))'
_TIMES = ''.join(rf'{key}:{_NUMBER}s, ' for key in TIME_KEYS)[:-2]
# `> video-frame PSNR=.., SSIM=.. pre_time:..s, ...` (the original's); without scores when there is no GT
FRAME_LINE = re.compile(rf'^> (.+)-([^-\s]+) (?:PSNR={_NUMBER}, SSIM={_NUMBER} )?{_TIMES}\s*$', re.IGNORECASE)
CHARTS = ('quality_per_video.png', 'psnr_per_frame.png', 'time_breakdown.png', 'quality_vs_speed.png')


class VisualizeError(UserError):
    """Unusable input: reported as one sentence, exit status 1."""


@dataclass
class Frame:
    frame: str
    psnr: Optional[float]
    ssim: Optional[float]
    times: dict


@dataclass
class Run:
    label: str
    videos: dict = field(default_factory=dict)  # video -> [Frame]

    @property
    def frames(self):
        return [f for frames in self.videos.values() for f in frames]

    @property
    def scored(self):
        return all(f.psnr is not None for f in self.frames)

    def avg(self, key, video=None):
        frames = self.videos[video] if video is not None else self.frames
        values = [getattr(f, key) if key in ('psnr', 'ssim') else f.times[key] for f in frames]
        return sum(values) / len(values)


# ---------------------------------------------------------------- reading

def parse_log(text, label):
    run = Run(label)
    for line in text.splitlines():
        match = FRAME_LINE.match(line.strip())
        if not match:
            continue
        video, frame, psnr, ssim, *times = match.groups()
        run.videos.setdefault(video, []).append(Frame(
            frame, float(psnr) if psnr is not None else None, float(ssim) if ssim is not None else None,
            dict(zip(TIME_KEYS, map(float, times)))))
    return run


def parse_metrics(data, label):
    run = Run(label)
    try:
        for video, summary in data['videos'].items():
            run.videos[video] = [
                Frame(f['frame'], _score(f.get('psnr'), 'psnr' in f), f.get('ssim'),
                      {key: float(f[key]) for key in TIME_KEYS})
                for f in summary['frames']]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise VisualizeError(f'{label} is not a metrics.json written by inference.py') from None
    return run


def _score(value, present):
    # metrics.json stores an infinite PSNR (identical images) as null
    if not present:
        return None
    return float('inf') if value is None else float(value)


def default_label(path):
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    if os.path.isfile(path):
        parts = parts[:-1]
    return '/'.join(parts[-2:])


def run_file_in(folder):
    """The file a results folder stands for: our metrics.json or inference_log.txt, else the
    original's single inference_log_<time>.txt."""
    for name in ('metrics.json', 'inference_log.txt'):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    original_logs = sorted(name for name in os.listdir(folder)
                           if name.startswith('inference_log_') and name.endswith('.txt'))
    if len(original_logs) == 1:
        return os.path.join(folder, original_logs[0])
    if original_logs:
        raise VisualizeError(f'{folder} holds {len(original_logs)} logs of the original '
                             f'({", ".join(original_logs)}): pass the one to chart')
    raise VisualizeError(f'{folder} holds neither metrics.json, inference_log.txt nor an '
                         f'inference_log_<time>.txt of the original')


def load_run(path, label=None):
    if os.path.isdir(path):
        return load_run(run_file_in(path), label or default_label(path))
    if not os.path.isfile(path):
        raise VisualizeError(f'{path} does not exist')
    label = label or default_label(path)
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise VisualizeError(f'cannot read {path} ({error.__class__.__name__})') from None
    if path.endswith('.json'):
        try:
            run = parse_metrics(json.loads(text), label)
        except json.JSONDecodeError:
            raise VisualizeError(f'{path} is not valid JSON') from None
    else:
        run = parse_log(text, label)
    if not run.frames:
        raise VisualizeError(f'{path} holds no per-frame results (no "> video-frame ..." lines)')
    return run


# ---------------------------------------------------------------- what is drawn

def quality_table(runs):
    """{run label: {video or 'Total': (avg PSNR, avg SSIM)}} of the runs that have scores."""
    table = {}
    for run in runs:
        if run.scored:
            rows = {video: (run.avg('psnr', video), run.avg('ssim', video)) for video in run.videos}
            rows['Total'] = (run.avg('psnr'), run.avg('ssim'))
            table[run.label] = rows
    return table


def time_table(runs):
    """{run label: {time key: average seconds per frame}}."""
    return {run.label: {key: run.avg(key) for key in TIME_KEYS} for run in runs}


# ---------------------------------------------------------------- drawing

def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, folder, name):
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
    _pyplot().close(fig)
    path = os.path.join(folder, name)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def draw_quality_per_video(plt, table, folder):
    labels = list(table)
    videos = list(dict.fromkeys(v for rows in table.values() for v in rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(videos) * len(labels) / 2 + 4), 4.5))
    width = 0.8 / len(labels)
    for axis, index, title in ((axes[0], 0, 'PSNR (dB)'), (axes[1], 1, 'SSIM')):
        for r, label in enumerate(labels):
            xs = [v + (r - (len(labels) - 1) / 2) * width for v in range(len(videos))]
            values = [table[label].get(video, (0, 0))[index] for video in videos]
            values = [v if math.isfinite(v) else 0 for v in values]  # an infinite PSNR has no bar
            axis.bar(xs, values, width, label=label)
        axis.set_xticks(range(len(videos)))
        axis.set_xticklabels(videos, rotation=30, ha='right')
        axis.set_title(title)
        finite = [row[index] for rows in table.values() for row in rows.values() if math.isfinite(row[index])]
        if finite:  # zoom in: runs usually differ by tenths of a dB
            pad = 1.0 if index == 0 else 0.02
            axis.set_ylim(min(finite) - pad, max(finite) + pad)
    axes[0].legend(fontsize=8)
    fig.suptitle('Quality per video')
    return _save(fig, folder, CHARTS[0])


def _frame_numbers(frames):
    """Frame numbers from the names ('00000012' -> 12), so runs with and without --border line up."""
    if all(f.frame.isdigit() for f in frames):
        return [int(f.frame) for f in frames]
    return list(range(len(frames)))


def draw_psnr_per_frame(plt, runs, folder):
    videos = list(dict.fromkeys(v for run in runs for v in run.videos))
    cols = min(2, len(videos))
    rows = (len(videos) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
    for axis, video in zip(axes.flat, videos):
        for run in runs:
            if video in run.videos:
                frames = run.videos[video]
                axis.plot(_frame_numbers(frames), [f.psnr for f in frames], label=run.label, linewidth=1,
                          marker='.', markersize=3)
        axis.set_title(video)
        axis.set_xlabel('frame')
        axis.set_ylabel('PSNR (dB)')
    for axis in list(axes.flat)[len(videos):]:
        axis.axis('off')
    axes.flat[0].legend(fontsize=8)
    fig.suptitle('PSNR per frame')
    fig.tight_layout()
    return _save(fig, folder, CHARTS[1])


def draw_time_breakdown(plt, table, folder):
    labels = list(table)
    fig, axis = plt.subplots(figsize=(max(6, 1.5 * len(labels) + 2), 4.5))
    bottom = [0.0] * len(labels)
    for key in TIME_KEYS[:3]:
        values = [table[label][key] for label in labels]
        axis.bar(range(len(labels)), values, 0.6, bottom=bottom, label=key.replace('_time', ''))
        bottom = [b + v for b, v in zip(bottom, values)]
    axis.set_xticks(range(len(labels)))
    axis.set_xticklabels(labels, rotation=20, ha='right')
    axis.set_ylabel('seconds per frame')
    axis.legend()
    axis.set_title('Time per frame: pre (read) / forward (network) / post (fetch, score, write)')
    return _save(fig, folder, CHARTS[2])


def draw_quality_vs_speed(plt, runs, folder):
    fig, axis = plt.subplots(figsize=(6.5, 4.5))
    for run in runs:
        x, y = run.avg('total_time'), run.avg('psnr')
        axis.scatter([x], [y], s=50)
        axis.annotate(run.label, (x, y), textcoords='offset points', xytext=(5, 5), fontsize=8)
    axis.set_xlabel('total time per frame (s)')
    axis.set_ylabel('average PSNR (dB)')
    axis.set_title('Quality against speed')
    axis.grid(alpha=0.3)
    return _save(fig, folder, CHARTS[3])


def draw_all(runs, folder):
    """Write the charts into `folder`; quality charts only for runs that have scores."""
    plt = _pyplot()
    os.makedirs(folder, exist_ok=True)
    written = []
    scored = [run for run in runs if run.scored]
    if scored:
        written.append(draw_quality_per_video(plt, quality_table(scored), folder))
        written.append(draw_psnr_per_frame(plt, scored, folder))
    written.append(draw_time_breakdown(plt, time_table(runs), folder))
    if scored:
        written.append(draw_quality_vs_speed(plt, scored, folder))
    return written


# ---------------------------------------------------------------- command line

def build_parser():
    parser = argparse.ArgumentParser(prog='sbvsr-visualize', description='Charts comparing inference runs')
    parser.add_argument('runs', nargs='+', help='metrics.json, inference log (ours or the original\'s) '
                                                'or results folder')
    parser.add_argument('--labels', nargs='+', default=None, help='one name per run (default: from the paths)')
    parser.add_argument('--output_dir', default='charts', help='folder for the PNG charts')
    return parser


def visualize(args):
    if args.labels is not None and len(args.labels) != len(args.runs):
        raise VisualizeError(f'--labels names {len(args.labels)} runs, but {len(args.runs)} were given')
    labels = args.labels or [None] * len(args.runs)
    runs = [load_run(path, label) for path, label in zip(args.runs, labels)]
    if len({run.label for run in runs}) != len(runs):
        raise VisualizeError('two runs have the same label; name them with --labels')
    for path in draw_all(runs, args.output_dir):
        print(path)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command('sbvsr-visualize', lambda: visualize(args), write_target=args.output_dir,
                       kept=lambda: f'{args.output_dir} holds only complete charts')


if __name__ == '__main__':
    sys.exit(main())
