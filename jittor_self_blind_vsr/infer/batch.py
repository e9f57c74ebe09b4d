"""A batch: `--input_path` naming a folder of video files or a glob pattern of them.

Each video is restored by a run of its own, as if given alone: its own results folder, lock,
staging folder, manifest and --resume. Only the model is shared (loaded and compiled once).
The run of video <stem> has the batch's options but for:

* --result_path OUT/<dataset_name> and --dataset_name <stem>, so its results are in
  OUT/<dataset_name>/<stem>/<blur_type>/ (<dataset_name>: the batch folder's name by default),
  as BasicSR keeps results/<dataset>/<clip>;
* --gt_path: the GT video, or the folder of GT frames, named <stem> in the batch's --gt_path folder.

A video that fails is said in one line and skipped; the others go on. This module plans the
batch (checked before the model is loaded) and says what became of each video, at the end or
when the batch is interrupted.
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Optional

from jittor_self_blind_vsr.infer import InferenceError
from jittor_self_blind_vsr.infer.results import left_behind, results_folder
from jittor_self_blind_vsr.infer.sources import list_videos, video_stem
from jittor_self_blind_vsr.utils.cli import UserError, one_line
from jittor_self_blind_vsr.utils.image_io import is_inside, list_subfolders

PARTLY_FAILED = 3  # exit status of a batch in which some videos failed and the others were restored


class BatchFailed(UserError):
    """Videos of a batch failed (each was said when it did): exit status PARTLY_FAILED when others
    were restored, 1 when none was."""

    def __init__(self, message, exit_status):
        super().__init__(message)
        self.exit_status = exit_status


@dataclass
class Video:
    path: str
    args: argparse.Namespace  # the options of its own run
    state: str = 'waiting'  # then 'running', and 'done' or 'failed'
    started: float = 0.0
    seconds: float = 0.0  # from its first check to its results moved into place
    total: Optional[object] = None  # results.Averages of its frames, once done
    error: str = ''  # why it failed

    @property
    def name(self):
        return self.args.dataset_name


def ground_truth(folder, videos):
    """{stem: its GT video file or folder of GT frames in `folder`} for the videos {stem: path} of a batch."""
    if not os.path.isdir(folder):
        raise InferenceError(f'with a batch of videos, --gt_path must be a folder holding a GT video or a folder of '
                             f'GT frames named after each input video; {folder} is not a folder')
    found = {}
    for path in list_videos(folder):
        found.setdefault(video_stem(path), []).append(path)
    for path in list_subfolders(folder):
        found.setdefault(os.path.basename(path), []).append(path)
    pairs = {}
    for stem, path in videos.items():
        match = found.get(stem, [])
        if not match:
            raise InferenceError(f'the GT folder {folder} holds no video or frame folder named {stem} (for {path}); '
                                 f'give ground truth for every video of the batch, or no --gt_path')
        if len(match) > 1:
            raise InferenceError(f'the GT folder {folder} holds both {match[0]} and {match[1]} for the video {path}; '
                                 f'keep one')
        pairs[stem] = match[0]
    return pairs


class Batch:
    """The videos of a batch, the options of each one's run, and what became of each."""

    def __init__(self, args, paths, program):
        self.program = program
        # each video's lock removes the folders it made when they stay empty; OUT is the batch's to remove
        self.made_root = not os.path.isdir(args.result_path)
        self.root = args.result_path
        root = os.path.join(args.result_path, args.dataset_name)
        if os.path.isdir(args.input_path) and (is_inside(root, args.input_path) or is_inside(args.input_path, root)):
            raise InferenceError(f'the results root {root} and the input folder {args.input_path} lie inside one '
                                 f'another; give another --result_path')
        stems = {}
        for path in paths:
            stem = video_stem(path)
            if stem in stems:
                raise InferenceError(f'the batch holds two videos named {stem} ({stems[stem]} and {path}), whose '
                                     f'results would share {os.path.join(root, stem)}; rename one')
            stems[stem] = path
        gts = ground_truth(args.gt_path, stems) if args.gt_path is not None else {}
        self.videos = [Video(path, argparse.Namespace(**{**vars(args), 'input_path': path, 'gt_path': gts.get(stem),
                                                         'result_path': root, 'dataset_name': stem}))
                       for stem, path in stems.items()]

    def start(self, video):
        video.state, video.started = 'running', time.perf_counter()

    def finish(self, video, run):
        video.state, video.total, video.seconds = 'done', run.total, time.perf_counter() - video.started

    def fail(self, video, error):
        """Note and say at once, in one line, why `video` failed (a UserError or an OSError)."""
        if isinstance(error, OSError):
            where = error.filename or f'the results in {results_folder(video.args)}'
            video.error = f'{error.strerror or one_line(error)} ({where}); {left_behind(video.args)}'
        else:
            video.error = one_line(error)
        video.state = 'failed'
        print(f'{self.program}: video {video.path} failed and is skipped: {video.error}', file=sys.stderr, flush=True)

    def tidy(self):
        """Remove OUT when the batch made it and no video left anything there."""
        if self.made_root:
            try:
                os.rmdir(self.root)
            except OSError:
                pass

    def summary(self):
        """The lines printed at the end: per video its frames, PSNR and SSIM (with GT), seconds and results
        folder, or why it failed."""
        done = sum(v.state == 'done' for v in self.videos)
        lines = [f'batch: {done} of {len(self.videos)} videos restored']
        for video in self.videos:
            if video.state != 'done':
                lines.append(f'  {video.name}: failed: {video.error}')
                continue
            total = video.total
            scores = f', PSNR {total.mean("psnr"):.5} dB, SSIM {total.mean("ssim"):.4}' if 'psnr' in total.keys else ''
            frames = '1 frame' if total.n_frames == 1 else f'{total.n_frames} frames'
            lines.append(f'  {video.name}: {frames}{scores}, {video.seconds:.1f} s, '
                         f'results in {results_folder(video.args)}')
        return lines

    def end(self):
        """Print the summary; raises BatchFailed when a video failed."""
        for line in self.summary():
            print(line, flush=True)
        failed = [v.name for v in self.videos if v.state == 'failed']
        if failed:
            restored = len(self.videos) - len(failed)
            raise BatchFailed(f'{len(failed)} of {len(self.videos)} videos failed and were skipped '
                              f'({", ".join(failed)}); {restored} restored', PARTLY_FAILED if restored else 1)

    def stopped(self):
        """What an interrupted batch left, in one sentence: the videos finished (kept), the one stopped,
        those not started."""
        done = [f'{v.name} ({results_folder(v.args)})' for v in self.videos if v.state == 'done']
        parts = [f'finished and kept: {", ".join(done)}' if done else 'no video was finished']
        failed = [v.name for v in self.videos if v.state == 'failed']
        if failed:
            parts.append(f'failed: {", ".join(failed)}')
        parts += [f'{v.name} was stopped: {left_behind(v.args)}' for v in self.videos if v.state == 'running']
        waiting = [v.name for v in self.videos if v.state == 'waiting']
        if waiting:
            parts.append(f'not started: {", ".join(waiting)}')
        return '; '.join(parts)
