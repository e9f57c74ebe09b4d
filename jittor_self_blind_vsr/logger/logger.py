"""The experiment folder, laid out as the original logger lays it out.

    <experiment_dir>/<save>/
        config.txt        options of every start ("From epoch N...")
        log.txt           everything write_log() printed
        model/            model_latest.pkl, model_best.pkl, model_<epoch>.pkl
        result/<data_test>/<video>/<frame>_{gt,lr,sr,...}.png   (--save_images)
        training_state.pkl  epoch, model, optimizer and logs: what --resume reads
        *.png             loss and PSNR curves
        .sbvsr-train      marks the folder as an experiment of this tool

Starting a new experiment over an existing folder renames that folder to
`<save>_archived_<time>` first, but only when it is an earlier experiment (it holds the
marker, or the config.txt every start writes); any other non-empty folder is refused
before anything is written, and an empty one is used as it is. Under MPI only rank 0
touches files.
"""
import datetime
import io
import os
from pathlib import Path

from tqdm import tqdm

from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
from jittor_self_blind_vsr.utils.checkpoint import load_pickle_safe, save_pickle_atomic, save_state_dict_file
from jittor_self_blind_vsr.utils.cli import UserError
from jittor_self_blind_vsr.utils.image_io import is_inside, write_image

STATE_FILE = 'training_state.pkl'
MARKER = '.sbvsr-train'
CONFIG_FIRST_LINE = 'From epoch '


class ExperimentError(UserError, ValueError):
    """The experiment folder cannot serve the request; the message is one sentence."""


def not_an_experiment(folder):
    """Why the existing `folder` may not be archived as an earlier experiment, or None when it may."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return 'it is not a folder'
    if is_inside(os.getcwd(), folder):
        return 'it holds the current folder'
    if (folder / MARKER).is_file():
        return None
    try:  # experiments of earlier versions, which wrote no marker
        with open(folder / 'config.txt', encoding='utf-8', errors='replace') as f:
            if f.read(len(CONFIG_FIRST_LINE)) == CONFIG_FIRST_LINE:
                return None
    except OSError:
        pass
    return f'it has neither {MARKER} nor a config.txt written by sbvsr-train'


def _is_empty(folder):
    return folder.is_dir() and not folder.is_symlink() and next(folder.iterdir(), None) is None


def _archive(folder):
    folder = os.path.abspath(folder)  # `--save ..` names the parent, not a sibling called '.._archived_*'
    stamp = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
    target = Path(f'{folder}_archived_{stamp}')
    number = 1
    while target.exists():
        target = Path(f'{folder}_archived_{stamp}_{number}')
        number += 1
    os.rename(folder, target)
    return target


class Logger:
    def __init__(self, args, is_main=True):
        self.args = args
        self.is_main = is_main
        self.continuing = (args.load != '.' or args.resume) and not args.test_only
        name = args.load if args.load != '.' else args.save
        self.dir = Path(args.experiment_dir) / name
        self.archived = None
        self.committed_epoch = None  # the epoch training_state.pkl holds, once read or written
        self._check_folder()
        self.log_file = None

    @property
    def state_path(self):
        return self.dir / STATE_FILE

    def model_path(self, which):
        return self.dir / 'model' / f'model_{which}.pkl'

    def _check_folder(self):
        existing = next(p for p in (self.dir, *self.dir.parents) if p.exists())
        if not existing.is_dir():
            raise ExperimentError(f'cannot create the experiment folder {self.dir}: {existing} is not a folder')
        if self.continuing and not self.state_path.is_file():
            raise ExperimentError(f'cannot continue: {self.state_path} does not exist '
                                  f'(start the experiment without --resume/--load first)')
        if self.args.test_only and self.args.pre_train == '.' and not self.model_path('best').is_file():
            raise ExperimentError(f'--test_only needs {self.model_path("best")} or --pre_train FILE')
        self._folder_to_archive()

    def _folder_to_archive(self):
        """The earlier experiment a new one replaces, or None; raises for a folder that is not one."""
        fresh = not (self.continuing or self.args.test_only)
        if not fresh or not os.path.lexists(self.dir) or _is_empty(self.dir):
            return None
        reason = not_an_experiment(self.dir)
        if reason is not None:
            raise ExperimentError(f'{self.dir} exists and is not an earlier experiment of sbvsr-train '
                                  f'({reason}), so it is not archived; give another --save or --experiment_dir')
        return self.dir

    def start(self):
        """Archive an old folder, create the layout and open log.txt (checks passed, work begins)."""
        if not self.is_main:
            return
        if self._folder_to_archive() is not None:  # checked again: the folder may have changed meanwhile
            self.archived = _archive(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.dir / MARKER, b'an experiment folder of sbvsr-train, which may archive it\n')
        (self.dir / 'model').mkdir(parents=True, exist_ok=True)
        (self.dir / 'result' / self.args.data_test).mkdir(parents=True, exist_ok=True)
        mode = 'a' if (self.dir / 'log.txt').exists() else 'w'
        self.log_file = open(self.dir / 'log.txt', mode, encoding='utf-8')
        if self.archived is not None:
            self.write_log(f'Archived the previous folder as {self.archived}')

    def write_config(self, start_epoch):
        if not self.is_main:
            return
        with open(self.dir / 'config.txt', 'a', encoding='utf-8') as f:
            f.write(f'From epoch {start_epoch}...\n\n')
            for key, value in sorted(vars(self.args).items()):
                f.write(f'{key}: {value}\n')
            f.write('\n')

    def write_log(self, text, echo=True):
        if not self.is_main:
            return
        if echo:
            tqdm.write(text)
        if self.log_file is not None:
            self.log_file.write(text + '\n')
            self.log_file.flush()

    def load_state(self):
        return load_pickle_safe(self.state_path)

    def save_checkpoint(self, state, epoch, is_best):
        """Model files first, then the training state: that file is the commit point of the epoch."""
        if not self.is_main:
            return
        save_state_dict_file(state['model'], self.model_path('latest'))
        if is_best:
            save_state_dict_file(state['model'], self.model_path('best'))
        if self.args.save_middle_models:
            save_state_dict_file(state['model'], self.model_path(epoch))
        save_pickle_atomic(state, self.state_path)
        self.committed_epoch = epoch

    def plot(self, filename, values, title, ylabel):
        """One curve over epochs (1..len(values)) as a PNG."""
        if not self.is_main or not values:
            return
        # imported here: matplotlib writes its font cache under ~ on first import. A Figure
        # of its own draws with Agg without switching the process's pyplot backend.
        from matplotlib.figure import Figure
        fig = Figure()
        axes = fig.add_subplot()
        axes.set_title(f'{title} Graph')
        axes.plot(range(1, len(values) + 1), values, label=title)
        axes.legend()
        axes.set_xlabel('Epochs')
        axes.set_ylabel(ylabel)
        axes.grid(True)
        buffer = io.BytesIO()
        fig.savefig(buffer, format='png')
        write_bytes_atomic(self.dir / filename, buffer.getvalue())

    def save_images(self, clip_name, images):
        """`clip_name` 'video.frame'; `images` {postfix: HxWx3 uint8} written as PNG files."""
        if not self.is_main:
            return
        video, _, frame = clip_name.partition('.')
        folder = self.dir / 'result' / self.args.data_test / video
        folder.mkdir(parents=True, exist_ok=True)
        for postfix, image in images.items():
            write_image(folder / f'{frame}_{postfix}.png', image)

    def done(self):
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def kept(self):
        """What an interrupted run leaves, as a clause for the user."""
        if self.committed_epoch is not None:
            return f'{self.state_path} keeps epoch {self.committed_epoch}, the last one completed'
        if self.state_path.is_file():
            return f'{self.state_path} is unchanged'
        return f'no epoch was completed, so {self.dir} holds no training state'
