"""Command-line options of training and evaluation.

Every option of the original `option/__init__.py`, plus the settings the original
only set in its templates (`--n_sequence`, `--n_feat`, ...) and the port's own
(`--device`, `--precision`, `--align_corners`, `--adam_eps_after_bias_correction`,
`--random_flow_init`, `--repeat_worker_kernels`). Precedence, lowest first:
parser default, template file (`templates/<name>.cfg`), command line. The original
let the template win over the command line, which made templates impossible to adjust.

Default paths are relative to the working directory, laid out like the original
repository's root (its `../dataset`, `../experiment`, `../pretrain_models` seen from
its `code/` folder): run from the folder that holds `dataset/` and `pretrain_models/`.

Every numeric option declares its range with its `type=` (`int_range`, `float_range`,
...); the same check reads the command line and the templates, and every CLI of the
package uses these types, so a bad number is refused with one sentence naming the
option, the value and the range.
"""
import argparse
import importlib.resources
import math
from pathlib import Path

from jittor_self_blind_vsr.model.specification import PUBLISHED_CONFIG
from jittor_self_blind_vsr.utils.cli import VERBOSE_HELP, UserError

# The repository keeps the templates in its top-level templates/; setup.py maps that folder
# into the package as this sub-package, so a wheel and an editable install both hold them.
TEMPLATE_PACKAGE = 'jittor_self_blind_vsr.templates'
TEMPLATE_SUFFIX = '.cfg'
DEFAULT_TEMPLATE = 'Self_Blind_VSR_Gaussian'
# The original treats `--epochs 0` as "train forever".
ENDLESS_EPOCHS = 10 ** 8


class OptionError(UserError, ValueError):
    """A bad option value or template; the message is one sentence for the user."""
    exit_status = 2


def str2bool(text):
    """A command-line boolean, for sbvsr-train and sbvsr-infer alike."""
    lowered = str(text).strip().lower()
    if lowered in ('1', 'true', 'yes', 'y', 'on'):
        return True
    if lowered in ('0', 'false', 'no', 'n', 'off'):
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


# A switch: `--name` or `--name true` turns it on, `--name false` off (also when a template turned it on).
FLAG = dict(type=str2bool, nargs='?', const=True, default=False, metavar='BOOL')


def _number_type(convert, accepts, rule):
    """An argparse `type=`: text -> number, refused unless `accepts(number)`.

    argparse prints the refusal as 'argument --NAME: must be RULE, not TEXT'."""
    def parse(text):
        try:
            value = convert(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f'must be {rule}, not {text!r}')
        return value
    parse.rule = rule
    parse.__name__ = 'int' if convert is int else 'float'
    return parse


def int_range(low, high=None, *, odd=False, multiple_of=1):
    """Integers in [low, high] (no upper bound when high is None), odd or a multiple of a step if asked."""
    kind = 'an odd integer' if odd else f'a multiple of {multiple_of}' if multiple_of > 1 else 'an integer'
    rule = f'{kind} >= {low}' if high is None else f'{kind} in [{low}, {high}]'

    def accepts(n):
        return low <= n and (high is None or n <= high) and n % multiple_of == 0 and (n % 2 == 1 or not odd)
    return _number_type(int, accepts, rule)


def float_range(low, high=None, *, low_open=False, high_open=False):
    """Finite numbers from low (excluded if low_open) up to high (excluded if high_open)."""
    if high is None:
        rule = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        rule = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def accepts(x):
        above = x > low if low_open else x >= low
        below = high is None or (x < high if high_open else x <= high)
        return math.isfinite(x) and above and below
    return _number_type(float, accepts, rule)


positive_int = int_range(1)
non_negative_int = int_range(0)
positive_float = float_range(0, low_open=True)
non_negative_float = float_range(0)
power_of_two = _number_type(int, lambda n: n >= 1 and n & (n - 1) == 0, 'a power of two (1, 2, 4, 8, ...)')
LOSS_TYPES = ('L1', 'MSE')


def parse_loss_string(text):
    """'1*L1+0.5*MSE' -> [(1.0, 'L1'), (0.5, 'MSE')]; OptionError says what --loss must be."""
    terms = []
    for part in text.split('+'):
        weight, sep, kind = (piece.strip() for piece in part.partition('*'))
        if not sep or kind not in LOSS_TYPES:
            raise OptionError(f"must be WEIGHT*TYPE terms joined by '+' with TYPE one of {', '.join(LOSS_TYPES)} "
                              f"(e.g. '1*L1+0.5*MSE'), not {text!r}")
        try:
            terms.append((non_negative_float(weight), kind))
        except argparse.ArgumentTypeError:
            raise OptionError(f'must weight each term by {non_negative_float.rule}, '
                              f'not {weight!r} (in {text!r})') from None
    return terms


def loss_string(text):
    """argparse `type=` of --loss: the text itself, once it parses."""
    try:
        parse_loss_string(text)
    except OptionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


# NumPy takes seeds below 2**32, and training seeds epoch e with seed + e (e up to ENDLESS_EPOCHS).
seed_int = int_range(0, 2 ** 31 - 1)


def _add_hardware(parser):
    group = parser.add_argument_group('hardware')
    group.add_argument('--n_threads', type=non_negative_int, default=4,
                       help='number of data loading worker processes')
    group.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                       help='auto uses CUDA only when a GPU answers')
    group.add_argument('--cpu', dest='device', action='store_const', const='cpu',
                       help='alias of --device cpu')
    group.add_argument('--precision', choices=('exact', 'fast'), default='exact',
                       help="exact: the original's float32 arithmetic; fast: on the CPU, oneDNN's Winograd "
                            "kernel for the trunk's 3x3 convolutions without gradients, brgconv elsewhere "
                            "(docs/model.md)")
    group.add_argument('--verbose', action='store_true', help=VERBOSE_HELP)
    group.add_argument('--n_GPUs', type=positive_int, default=1,
                       help='kept for the original command lines; several devices train with mpirun -np N')
    group.add_argument('--seed', type=seed_int, default=1, help='random seed')


def _add_data(parser):
    group = parser.add_argument_group('data')
    group.add_argument('--dir_data', default='dataset/REDS/train', help='training set folder')
    group.add_argument('--dir_data_test', default='dataset/REDS4_BlurDown_Gaussian', help='test set folder')
    group.add_argument('--data_train', default='REDS_BLURDOWN_GAUSSIAN', help='training dataset class')
    group.add_argument('--data_test', default='REDS_HRLR', help='test dataset class')
    group.add_argument('--process', **FLAG, help='load the whole dataset into RAM')
    group.add_argument('--scale', type=power_of_two, default=PUBLISHED_CONFIG['scale'], help='super-resolution scale')
    group.add_argument('--patch_size', type=positive_int, default=160,
                       help='LR training patch size (the HR crop is scale times it)')
    group.add_argument('--size_must_mode', type=positive_int, default=1,
                       help='the network input size must be a multiple of this number')
    group.add_argument('--HR_in', **FLAG, help='the network input is bicubic-upsampled')
    group.add_argument('--rgb_range', type=positive_int, default=1, help='maximum RGB value')
    group.add_argument('--n_colors', type=positive_int, default=PUBLISHED_CONFIG['n_colors'],
                       help='number of colour channels')
    group.add_argument('--no_augment', **FLAG, help='no flip/rotation augmentation')
    group.add_argument('--test_padding', type=non_negative_int, default=0,
                       help='padding at test time, cropped afterwards')
    group.add_argument('--n_sequence', type=positive_int, default=PUBLISHED_CONFIG['n_sequence'],
                       help='frames per input clip')
    group.add_argument('--n_frames_per_video', type=positive_int, default=50,
                       help='frames used from each training video (at least --n_sequence)')
    group.add_argument('--repeat_worker_kernels', **FLAG,
                       help='realistic online kernels: every loader worker draws the same kernel sequence '
                            'in every epoch, as the original did (default: fresh kernels)')


def _add_model(parser):
    group = parser.add_argument_group('model')
    group.add_argument('--task', default='FlowVideoSR', choices=('FlowVideoSR',), help='task')
    group.add_argument('--model', default='PWC_Recons', choices=('PWC_Recons',), help='model name')
    group.add_argument('--pre_train', default='.', help='weights (.pkl or .pt) to start the whole model from')
    group.add_argument('--n_feat', type=positive_int, default=PUBLISHED_CONFIG['n_feat'], help='feature channels')
    group.add_argument('--extra_RBS', type=non_negative_int, default=PUBLISHED_CONFIG['extra_RBS'],
                       help='residual blocks of per-frame features')
    group.add_argument('--recons_RBS', type=non_negative_int, default=PUBLISHED_CONFIG['recons_RBS'],
                       help='residual blocks of the reconstruction')
    group.add_argument('--ksize', type=int_range(1, odd=True), default=PUBLISHED_CONFIG['ksize'],
                       help='estimated blur kernel size')
    group.add_argument('--align_corners', type=str2bool, default=True,
                       help="grid_sample semantics: true as PyTorch 0.4.1 (the published weights), "
                            "false as PyTorch >= 1.3")
    group.add_argument('--flow', choices=('pwc', 'dis'), default=PUBLISHED_CONFIG['flow'],
                       help="pwc: PWC-Net, learned (the published model); dis: OpenCV's DIS optical flow, "
                            "classical, no weights (the shipped embedded model; docs/demo.md)")
    group.add_argument('--random_flow_init', **FLAG,
                       help='start PWC-Net from random weights when no pretrained file is found')


def _add_training(parser):
    group = parser.add_argument_group('training')
    group.add_argument('--test_every', type=positive_int, default=1000,
                       help='batches per epoch (sets dataset repeat)')
    group.add_argument('--epochs', type=non_negative_int, default=500, help='epochs to train (0: endless)')
    group.add_argument('--batch_size', type=positive_int, default=8, help='training batch size')
    group.add_argument('--test_only', **FLAG, help='only evaluate model_best of the experiment')
    group.add_argument('--loss', type=loss_string, default='1*L1',
                       help="reconstruction loss, e.g. '1*L1' or '1*L1+0.5*MSE' (weights >= 0)")
    group.add_argument('--lr', type=positive_float, default=1e-4, help='learning rate')
    group.add_argument('--flow_lr', type=non_negative_float, default=1e-6,
                       help='learning rate of the PWC-Net parameters (0 freezes them)')
    group.add_argument('--lr_decay', type=positive_int, default=100, help='halve the learning rate every N epochs')
    group.add_argument('--gamma', type=float_range(0, 1, low_open=True), default=0.5, help='step decay factor')
    group.add_argument('--beta1', type=float_range(0, 1, high_open=True), default=0.9, help='Adam beta1')
    group.add_argument('--beta2', type=float_range(0, 1, high_open=True), default=0.999, help='Adam beta2')
    group.add_argument('--epsilon', type=positive_float, default=1e-8, help='Adam epsilon')
    group.add_argument('--adam_eps_after_bias_correction', **FLAG,
                       help="where Adam adds epsilon: false to sqrt(v), before the bias correction, as "
                            "PyTorch 0.4.1 (the published training); true to the bias-corrected sqrt(v), "
                            "as PyTorch >= 1.3")
    group.add_argument('--weight_decay', type=non_negative_float, default=0, help='weight decay')
    group.add_argument('--kernel_prior_batches', type=non_negative_int, default=0,
                       help='batches during which the estimated kernel is also pulled towards an isotropic '
                            'Gaussian of --kernel_prior_sigma (0: none, as the original; docs/training.md)')
    group.add_argument('--kernel_prior_sigma', type=positive_float, default=1.2,
                       help='sigma, in HR pixels, of the --kernel_prior_batches prior (default 1.2, the middle of '
                            'the published Gaussian training range 0.4-2.0)')
    group.add_argument('--mid_loss_weight', type=non_negative_float, default=1.,
                       help='weight of a model-internal loss')


def _add_logging(parser):
    group = parser.add_argument_group('logging')
    group.add_argument('--experiment_dir', default='experiment/', help='folder holding the experiments')
    group.add_argument('--pretrain_models_dir', default='pretrain_models/',
                       help='folder holding network-default.pkl/.pt/.pytorch (PWC-Net initial weights)')
    group.add_argument('--save', default='default_save', help='experiment name')
    group.add_argument('--save_middle_models', **FLAG, help='keep the model of every epoch')
    group.add_argument('--load', default='.', help='experiment name to continue')
    group.add_argument('--resume', **FLAG,
                       help='continue the experiment (--load, else --save) from its latest checkpoint')
    group.add_argument('--print_every', type=positive_int, default=100, help='batches between log lines')
    group.add_argument('--save_images', **FLAG, help='write gt/lr/sr/kernel images at evaluation')


def build_parser():
    parser = argparse.ArgumentParser(prog='sbvsr-train',
                                     description='Train or evaluate Self-Blind-VSR (Jittor).')
    parser.add_argument('--template', default=DEFAULT_TEMPLATE,
                        help=f"settings file, one of: {', '.join(template_names()) or 'none found'} "
                             f"(command-line values override it; default: %(default)s)")
    for add in (_add_hardware, _add_data, _add_model, _add_training, _add_logging):
        add(parser)
    return parser


def template_dir():
    """The folder of the templates: the installed package's data, else a plain checkout's templates/."""
    try:
        return importlib.resources.files(TEMPLATE_PACKAGE)
    except ModuleNotFoundError:
        # the package imported from a checkout that was never installed (PYTHONPATH, `python main.py`)
        return Path(__file__).resolve().parents[2] / 'templates'


def template_names():
    folder = template_dir()
    if not folder.is_dir():
        return []
    return sorted(entry.name[:-len(TEMPLATE_SUFFIX)] for entry in folder.iterdir()
                  if entry.name.endswith(TEMPLATE_SUFFIX) and entry.is_file())


def _convert(action, key, text, path):
    convert = action.type or str
    try:
        value = convert(text)
    except argparse.ArgumentTypeError as error:
        raise OptionError(f'{path}: {key} {error}') from None
    except ValueError:
        raise OptionError(f'{path}: {key} = {text!r} is not a valid value') from None
    if action.choices is not None and value not in action.choices:
        raise OptionError(f"{path}: {key} must be one of {', '.join(map(str, action.choices))}")
    return value


def read_template(name, parser):
    """{dest: value} of `templates/<name>.cfg` (lines `key = value`, `#` comments)."""
    path = template_dir() / (name + TEMPLATE_SUFFIX)
    if not path.is_file():
        known = ', '.join(template_names()) or f'none (no {TEMPLATE_SUFFIX} files in {template_dir()})'
        raise OptionError(f'unknown template {name!r}; known templates: {known}')
    actions = {a.dest: a for a in parser._actions if a.dest not in ('help', 'template')}
    values = {}
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        key, sep, text = (part.strip() for part in line.partition('='))
        if not sep or key not in actions:
            raise OptionError(f'{path}:{number}: expected "option = value" with a known option, got {line!r}')
        values[key] = _convert(actions[key], key, text, path)
    return values


def _explicit_dests(argv):
    """The options the command line really names (so a template cannot override them)."""
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def _check(args):
    """What a single option's range cannot say (each range is checked by its `type=`)."""
    if args.n_sequence != 5:
        raise OptionError(f'--n_sequence must be 5 (the model fuses 5 frames), got {args.n_sequence}')
    if args.n_frames_per_video < args.n_sequence:
        raise OptionError(f'--n_frames_per_video must be at least --n_sequence ({args.n_sequence}), '
                          f'got {args.n_frames_per_video}')
    if args.n_GPUs > 1:
        raise OptionError('--n_GPUs > 1 is not how this port uses several devices; '
                          'run `mpirun -np N sbvsr-train ...` instead')


def parse_args(argv=None):
    """Options as a Namespace; raises OptionError (one sentence) on a bad value or template."""
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit = _explicit_dests(argv)
    for dest, value in read_template(args.template, parser).items():
        if dest not in explicit:
            setattr(args, dest, value)
    if args.epochs == 0:
        args.epochs = ENDLESS_EPOCHS
    _check(args)
    return args
