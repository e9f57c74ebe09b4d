"""Super-resolve video clips with a trained Self-Blind-VSR model, score and save the results.

Run from the folder that holds dataset/ and pretrain_models/ (the repository root):
`python jittor_self_blind_vsr/inference.py --quick_test Gaussian_REDS4`, or `sbvsr-infer ...`.
This module is the command line (options, presets, the order of the steps); the work is
done by jittor_self_blind_vsr/infer/ (sources, restorer, results). docs/inference.md
describes the options, the input forms, the results layout and the guarantee that a failed
run leaves no half-written results behind.
"""
import argparse
import os
import sys
import time

from jittor_self_blind_vsr import weights
from jittor_self_blind_vsr.infer import InferenceError, tiling, video
from jittor_self_blind_vsr.infer.batch import PARTLY_FAILED, Batch
from jittor_self_blind_vsr.infer.lock import OutputLock
from jittor_self_blind_vsr.infer.progress import Progress
from jittor_self_blind_vsr.infer.results import (VIDEO_FORMATS, InferenceRun, check_destination, left_behind,
                                                 results_folder)
from jittor_self_blind_vsr.infer.sources import (batch_videos, collect_clips, cropped_size, input_name, quiet_ffmpeg,
                                                 window_count)
from jittor_self_blind_vsr.option import int_range, positive_float, positive_int, power_of_two, str2bool
from jittor_self_blind_vsr.runtime import DEVICES, PRECISIONS, current_device, import_jittor, show_jittor_log
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.cli import VERBOSE_HELP, UserError, run_command
from jittor_self_blind_vsr.utils.resample import LR_GRIDS

PROGRAM = 'sbvsr-infer'
# The original's --quick_test presets: (blur type, test set).
PRESETS = ('Gaussian_REDS4', 'Gaussian_Vid4', 'Gaussian_SPMCS', 'Realistic_REDS4')
# What the original's code scored with the published weights, where a score could be checked
# (docs/reproduction.md, "Expected numbers", has the source and its caveats).
REFERENCE_SCORES = {
    'Realistic_REDS4': ('the original PyTorch code with the published weights scored 27.075 dB / 0.7695 (clips 000, '
                        '011, 015, 020: 24.775, 27.615, 29.680, 26.229 dB) in an independent run on PyTorch >= 1.7, '
                        'i.e. with --align_corners False (github.com/Athena-Re/Self-Blind-VSR-with-Jittor, README of '
                        '2025-06-23); this port computes the original\'s function for the same weights'),
}
TILE_OVERLAP = 16
NAME_MAX = 255  # bytes of a file name on Linux's file systems
# What the staging folder's name '.<blur_type>.partial-XXXXXXXX' adds to --blur_type.
NAME_ADDED = len('..partial-') + 8


# where the published weights come from, in one phrase for the messages that need them
PUBLISHED_MODELS = ("the published models (self_blind_vsr_gaussian.pt, self_blind_vsr_realistic.pt) come from the "
                    "authors' Google Drive folder linked in docs/reproduction.md and go in pretrain_models/")


def published_model(blur_type):
    """pretrain_models/self_blind_vsr_<blur>.pt as the original's README has it downloaded, else
    the .pkl sbvsr-convert makes of it; the .pt's path when neither exists (the error names it)."""
    stem = os.path.join('pretrain_models', f'self_blind_vsr_{blur_type.lower()}')
    return next((stem + ext for ext in ('.pt', '.pkl') if os.path.isfile(stem + ext)), stem + '.pt')


def preset(name):
    """The option values of a --quick_test preset, paths relative to the working directory."""
    blur_type, test_set = name.split('_')
    root = os.path.join('dataset', f'{test_set}_BlurDown_{blur_type}')
    return dict(scale=4, dataset_name=test_set, blur_type=blur_type, infer_flag=name,
                input_path=os.path.join(root, 'LR_blurdown_x4'), gt_path=os.path.join(root, 'HR'),
                model_path=published_model(blur_type))


def _flag(parser, name, default, text):
    """A boolean option usable as `--name`, `--name True` or `--name False`."""
    parser.add_argument(name, type=str2bool, nargs='?', const=True, default=default, help=text)


def build_parser():
    parser = argparse.ArgumentParser(prog=PROGRAM, description='Self-Blind-VSR inference (Jittor)',
                                     epilog=f'exit status: 0 done; 1 bad input or a failed run; 2 bad options; '
                                            f'{PARTLY_FAILED} a batch partly failed (some videos restored, others '
                                            f'skipped); 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP')
    _flag(parser, '--save_image', True, 'save the restored frames as PNG (default True)')
    _flag(parser, '--border', False, 'also restore the first and last n_seq//2 frames of each video')
    _flag(parser, '--save_video', False, 'also write each restored clip as a video file')
    _flag(parser, '--resume', False, 'keep the finished frames of an interrupted run with the same options '
                                     '(and start a run that an interruption leaves resumable)')
    _flag(parser, '--align_corners', True, 'grid_sample semantics: True = PyTorch 0.4.1, which the '
                                           'published weights were trained with')
    parser.add_argument('--video_format', choices=VIDEO_FORMATS, default='mp4', help='container for --save_video')
    parser.add_argument('--video_codec', choices=sorted({c for codecs in video.CODECS.values() for c in codecs}),
                        default=None, help='ffmpeg encoder of --save_video (default: libx264 in .mp4, mjpeg in .avi)')
    parser.add_argument('--video_crf', type=int_range(0, 51), default=None,
                        help=f'quality of libx264 and libx265, 0 (finest) to 51 (coarsest); default '
                             f'{video.DEFAULT_CRF}')
    parser.add_argument('--fps', type=positive_float, default=None,
                        help='frame rate of --save_video (default: the input video\'s, else 25)')
    parser.add_argument('--input_path', default=os.path.join('dataset', 'input'),
                        help='folder of video folders, one folder of frames, or a video file; or, as a batch, a '
                             'folder of video files or a quoted glob pattern (\'clips/*.mp4\'): each video then '
                             'has its own results in OUT/<dataset_name>/<video name>/<blur_type>/')
    parser.add_argument('--gt_path', default=None, help='ground truth in the same form (optional); for a batch, a '
                                                        'folder holding a GT video or frame folder named after '
                                                        'each video')
    parser.add_argument('--model_path', default=None,
                        help='.pt (published PyTorch) or .pkl (converted) model file, or `embedded` for the '
                             'model shipped in the package (default: the published Gaussian model in '
                             'pretrain_models/, else `embedded`)')
    parser.add_argument('--result_path', default='infer_results', help='results root OUT')
    parser.add_argument('--dataset_name', default=None, help='results go to OUT/<dataset_name>/<blur_type>/ '
                                                             '(default: the input\'s name; a pattern\'s folder\'s)')
    parser.add_argument('--blur_type', default='unknown', help='second level of the results folder')
    parser.add_argument('--infer_flag', default='.', help='label of this run in the log (default: the time)')
    parser.add_argument('--quick_test', default='.', choices=('.',) + PRESETS,
                        help='the original\'s presets: test set and published model under dataset/ and '
                             'pretrain_models/; options given as well win')
    parser.add_argument('--n_seq', type=int_range(1, odd=True), default=5,
                        help='frames per window (the model\'s n_sequence)')
    parser.add_argument('--scale', type=power_of_two, default=4, help='upsampling factor')
    parser.add_argument('--size_must_mode', type=positive_int, default=1, help='crop LR frames to a multiple of this')
    parser.add_argument('--device', choices=DEVICES, default='auto', help='auto: CUDA when a GPU is usable')
    parser.add_argument('--precision', choices=PRECISIONS, default='exact',
                        help="exact: the original's float32 arithmetic; fast: the CPU trunk's 3x3 convolutions "
                             "on oneDNN's Winograd kernel, about 2x faster, about 1e-6 relative error (docs/model.md)")
    parser.add_argument('--lr_grid', choices=LR_GRIDS, default='corner',
                        help='where the input\'s pixel i sits on the HR grid: corner = HR pixel scale*i, as the '
                             'dataset script and the published models decimate; centre = scale*i + (scale-1)/2, as '
                             'cameras, ffmpeg and area or bicubic downscaling sample: the output is then moved '
                             'by (scale-1)/2 HR pixels onto the input\'s grid (docs/inference.md)')
    parser.add_argument('--tile', type=int_range(0), default=0,
                        help='restore LR tiles of this many pixels square, blended back (0: whole frames)')
    parser.add_argument('--tile_overlap', type=int_range(0), default=TILE_OVERLAP,
                        help=f'LR pixels neighbouring tiles share, blended linearly (default {TILE_OVERLAP})')
    parser.add_argument('--verbose', action='store_true', help=VERBOSE_HELP)
    parser.add_argument('--max_memory', type=positive_float, default=None,
                        help='GiB of memory to stay within: the tile size is chosen for it (instead of --tile)')
    return parser


def parse_args(argv=None, parser=None):
    """The options of `parser` (default: build_parser(); sbvsr-adapt passes it with its own group added)."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if args.quick_test != '.':
        # a preset only changes the defaults, so options on the command line win
        parser.set_defaults(**preset(args.quick_test))
        args = parser.parse_args(argv)
    if args.tile and args.max_memory is not None:
        parser.error('give --tile or --max_memory, not both')
    if args.tile and 2 * args.tile_overlap >= args.tile:
        parser.error(f'--tile_overlap {args.tile_overlap} must be smaller than half of --tile {args.tile}')
    if args.tile and args.tile < tiling.MIN_TILE:
        parser.error(f'--tile {args.tile} is too small: tiles of fewer than {tiling.MIN_TILE} LR pixels see too '
                     f'little of the frame for a sane output (give 0 for whole frames)')
    if (args.tile or args.max_memory is not None) and args.tile_overlap < tiling.MIN_OVERLAP:
        parser.error(f'--tile_overlap {args.tile_overlap} is too small: tiles that share fewer than '
                     f'{tiling.MIN_OVERLAP} LR pixels leave seams at their edges')
    if video.codec_problem(args) is not None:
        parser.error(video.codec_problem(args))
    if args.resume and not args.save_image:
        parser.error('--resume keeps the finished frames as PNG files: it needs --save_image')
    if args.dataset_name is None:
        args.dataset_name = input_name(args.input_path)
    if args.infer_flag == '.':
        args.infer_flag = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())
    args.default_model_line = None
    if args.model_path is None:
        args.model_path, args.default_model_line = default_model()
    args.model_path = weights.resolve(args.model_path)  # the log and results.json name the real file
    return args


def reference_line(preset):
    """The line a --quick_test run ends with: what to compare its total with."""
    score = REFERENCE_SCORES.get(preset, f'no score of the original with the published weights on {preset} could '
                                         f'be checked offline')
    return f'# Reference: {score}; sources and caveats: docs/reproduction.md, "Expected numbers"'


def default_model():
    """(model path, the line saying so or None) when --model_path is not given: the published
    Gaussian model where the original's layout has it, else the model shipped in the package."""
    published = published_model('Gaussian')
    if os.path.isfile(published):
        return published, None
    return weights.EMBEDDED, (f'no --model_path given and no {published}: using `embedded`, the small model shipped '
                              f'in the package; {PUBLISHED_MODELS}')


def check_model_exists(path):
    """Refuse a model file that is not there, saying where the published ones come from."""
    if not os.path.lexists(path):
        raise InferenceError(f'the model {path} does not exist: {PUBLISHED_MODELS}; --model_path embedded runs the '
                             f'small model shipped in the package')


def check_args(args):
    """What the parser cannot check (the numeric options' ranges are their `type=`)."""
    for name in (args.dataset_name, args.blur_type):
        if not name or name in ('.', '..') or os.sep in name:
            raise InferenceError(f'--dataset_name and --blur_type must be plain folder names, not {name!r}')
    length = len(os.fsencode(args.dataset_name))
    if length > NAME_MAX:
        raise InferenceError(f'--dataset_name is {length} bytes long, but a folder name may have at most {NAME_MAX}')
    length = len(os.fsencode(args.blur_type))
    if length + NAME_ADDED > NAME_MAX:
        raise InferenceError(f'--blur_type is {length} bytes long, too long for the name of its staging folder '
                             f'.<blur_type>.partial-XXXXXXXX ({NAME_MAX} bytes at most): give at most '
                             f'{NAME_MAX - NAME_ADDED} bytes')


def check_names(args, clips):
    """Refuse an input clip or frame name too long for the files written after it: a frame's PNG is
    written as '.<frame>.png.XXXXXXXX.tmp' first, a clip's video as '.<clip>.sound.partial.<ext>'."""
    for clip in clips:
        if args.save_video and len(os.fsencode(f'.{clip.name}.sound.partial.{args.video_format}')) > NAME_MAX:
            raise InferenceError(f'the video name {clip.name} is too long for the temporary files of its '
                                 f'--save_video output ({NAME_MAX} bytes at most with 19 added): rename it')
        if args.save_image:
            for name in map(clip.lr.frame_name, range(clip.lr.count)):
                if len(os.fsencode(f'.{name}.png.XXXXXXXX.tmp')) > NAME_MAX:
                    raise InferenceError(f'the frame name {name} of video {clip.name} is too long for the temporary '
                                         f'file of its PNG output ({NAME_MAX} bytes at most with 18 added): '
                                         f'rename the frames')


def tile_sizes(args, sizes, config):
    """{LR frame size: tile (0: whole frames)} of --tile, or chosen for --max_memory."""
    if args.max_memory is None:
        return {size: args.tile for size in sizes}
    tiles = {}
    for size in sizes:
        tile = tiling.choose_tile(args.max_memory, size, args.tile_overlap, args.n_seq, config['n_feat'], args.scale,
                                  args.precision)
        if tile is None:
            need = tiling.smallest_budget_gib(size, args.tile_overlap, args.n_seq, config['n_feat'], args.scale,
                                              args.precision)
            raise InferenceError(f'--max_memory {args.max_memory:g} GiB is too small for LR frames of '
                                 f'{size[0]}x{size[1]}: they need about {need:.1f} GiB with --tile_overlap '
                                 f'{args.tile_overlap}')
        tiles[size] = tile
    return tiles


def start_jittor(device, precision='exact'):
    """Jittor on `device` at `precision`; the model's modules are imported after this."""
    try:
        jt = import_jittor(device, precision)
    except RuntimeError as error:
        raise InferenceError(str(error)) from None
    interrupt.install()  # again: importing Jittor replaced the SIGINT handler
    return jt


def tiling_line(args, size, tile, config):
    """The log line of how frames of `size` (LR h, w) are tiled, or None without --tile and --max_memory."""
    if not args.tile and args.max_memory is None:
        return None
    overlap = args.tile_overlap
    height, width = shape = tiling.tile_shape(size, tile, overlap)
    tiled = tile if shape != tuple(size) else 0  # a tile that covers the frame restores it untiled
    peak = tiling.estimated_peak(size, tiled, overlap, args.n_seq, config['n_feat'], args.scale, args.precision)
    peak = f'estimated peak memory {peak / tiling.GIB:.2f} GiB (CPU)'
    if args.max_memory is not None:
        peak = f'memory budget {args.max_memory:g} GiB (--max_memory), {peak}'
    if shape == tuple(size):
        return f'# Tiles of LR {size[0]}x{size[1]}: none, whole frames; {peak}'
    count = len(tiling.tile_starts(size[0], height, overlap)) * len(tiling.tile_starts(size[1], width, overlap))
    chosen = ' chosen' if args.max_memory is not None else ''
    return (f'# Tiles of LR {size[0]}x{size[1]}: {count} per frame of {height}x{width} LR pixels '
            f'(--tile {tile}{chosen}), overlap {overlap} LR pixels; {peak}')


class Model:
    """The network of a run, built once, and the warm-ups done with it: a batch of videos loads and
    compiles the model once, not per video."""

    def __init__(self, args):
        check_model_exists(args.model_path)
        if args.default_model_line:  # once the input is known to be good, so a refusal stays one sentence
            print(f'{PROGRAM}: {args.default_model_line}', file=sys.stderr, flush=True)
        self.jt = start_jittor(args.device, args.precision)
        from jittor_self_blind_vsr.infer import restorer
        self.net, self.config = restorer.load_model(args.model_path, args.scale, args.n_seq, args.align_corners)
        self.seconds = {}  # (LR size, tile): seconds of its warm-up

    def warm_up(self, size, tile, args):
        """(seconds of the warm-up of frames of `size` with this tiling, whether an earlier video had it)."""
        earlier = (size, tile) in self.seconds
        if not earlier:
            from jittor_self_blind_vsr.infer import restorer
            self.seconds[size, tile] = restorer.warm_up(self.net, size, tile, args.tile_overlap, args.n_seq)
        return self.seconds[size, tile], earlier


def infer(args):
    """Restore, score and save every clip; returns the results folder."""
    return restore(args).final


def restore(args, model=None):
    """The InferenceRun that restored, scored and saved every clip, with `model` (default: loaded here)."""
    check_args(args)
    with OutputLock(args):
        return _infer(args, model)


def infer_batch(args, batch):
    """Restore every video of `batch` with one model, each into its own results folder; a video that
    fails is said in one line and skipped. Raises BatchFailed when one did."""
    try:
        model = Model(args)
        for video in batch.videos:
            batch.start(video)
            try:
                batch.finish(video, restore(video.args, model))
            except (UserError, OSError) as error:
                batch.fail(video, error)
    finally:
        batch.tidy()
    batch.end()


def _infer(args, model=None):
    check_destination(args)
    clips = collect_clips(args)
    check_names(args, clips)
    model = model or Model(args)
    from jittor_self_blind_vsr.infer import restorer
    net, config = model.net, model.config
    tiles = tile_sizes(args, dict.fromkeys(cropped_size(c.lr.size, args.size_must_mode) for c in clips), config)
    run = InferenceRun(args, config, current_device(), clips)
    try:
        run.log_header()
        for size, tile in tiles.items():
            line = tiling_line(args, size, tile, config)
            if line is not None:
                run.log(line)
        with model.jt.no_grad():
            for size, tile in tiles.items():
                run.log_warm_up(size, *model.warm_up(size, tile, args))
            for clip in clips:
                size = cropped_size(clip.lr.size, args.size_must_mode)
                windows = restorer.clip_restorer(net, size, tiles[size], args.tile_overlap, args.lr_grid)
                kept = run.start_clip(clip.name)
                frames = restorer.restore_clip(windows, clip, args.n_seq, args.border, size, args.scale, skip=kept)
                progress = Progress(clip.name, window_count(clip.lr.count, args.n_seq, args.border), done=kept)
                for frame in frames:
                    run.add_frame(clip.name, frame)
                    if frame.output is not None:
                        progress.update()
                progress.close()
                run.end_clip(clip.name)
        run.write_summaries()
        run.commit()
    except BaseException:
        run.abort()
        raise
    return run


def main(argv=None):
    args = parse_args(argv)
    if args.verbose:
        show_jittor_log()
    quiet_ffmpeg()
    final = results_folder(args)
    batch = []  # the Batch, when the input is one

    def kept():
        return batch[0].stopped() if batch else left_behind(args)

    def work():
        videos = batch_videos(args.input_path)
        if videos is None:
            print(f'results: {infer(args)}')
        else:
            check_args(args)
            batch.append(Batch(args, videos, PROGRAM))
            infer_batch(args, batch[0])
        if args.quick_test != '.':
            print(reference_line(args.quick_test))
    return run_command(PROGRAM, work, kept=kept, write_target=f'the results in {final}')


if __name__ == '__main__':
    sys.exit(main())
