"""--save_video's writers: a clip's restored frames piped raw to ffmpeg (H.264 by default), or, on a
machine without ffmpeg, written by OpenCV (MPEG-4 Part 2 or MJPEG, blockier)."""
import contextlib
import fractions
import subprocess
import tempfile

import cv2
import numpy as np

from jittor_self_blind_vsr.infer import InferenceError

# The codecs --video_codec accepts in each container, the default first.
CODECS = {'mp4': ('libx264', 'libx265', 'mpeg4'), 'avi': ('mjpeg', 'libx264', 'mpeg4')}
CRF_CODECS = ('libx264', 'libx265')  # the codecs --video_crf applies to
DEFAULT_CRF = 18
QUALITY = 2  # -q:v of mpeg4 and mjpeg, which take no CRF: their finest practical quantiser
# What OpenCV writes without ffmpeg.
OPENCV_FOURCC = {'mp4': 'mp4v', 'avi': 'MJPG'}


def video_codec(args):
    return args.video_codec or CODECS[args.video_format][0]


def codec_problem(args):
    """Why --video_codec and --video_crf do not go together with --video_format, or None."""
    codec = video_codec(args)
    if codec not in CODECS[args.video_format]:
        return (f'--video_codec {codec} is not written in .{args.video_format} files: give one of '
                f'{", ".join(CODECS[args.video_format])}')
    if args.video_crf is not None and codec not in CRF_CODECS:
        return (f'--video_crf applies to {" and ".join(CRF_CODECS)}; {codec} is written at its quantiser '
                f'-q:v {QUALITY} instead')
    return None


def check_encoder(ffmpeg, codec):
    """Refuse an ffmpeg (one on the PATH may be built without libx264) that lacks the encoder `codec`."""
    try:
        listed = subprocess.run([ffmpeg, '-hide_banner', '-nostdin', '-encoders'], capture_output=True, text=True,
                                timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise InferenceError(f'{ffmpeg} cannot be run ({error}), so --save_video cannot write its videos') from None
    if not any(line.split()[1:2] == [codec] for line in listed.splitlines()):
        raise InferenceError(f'the ffmpeg at {ffmpeg} has no {codec} encoder: give another --video_codec, or '
                             f'pip install imageio-ffmpeg, whose ffmpeg has it')


def _even(image):
    """The frame with its last row and column repeated where its sides are odd (only with --scale 1):
    4:2:0 video needs even sides."""
    rows, cols = image.shape[0] % 2, image.shape[1] % 2
    return np.pad(image, ((0, rows), (0, cols), (0, 0)), mode='edge') if rows or cols else image


class FFmpegWriter:
    """Frames (RGB uint8) piped as rgb24 to an ffmpeg process that encodes them into `path`.

    ffmpeg runs in a session of its own: a terminal's Ctrl-C reaches only sbvsr-infer, which then
    stops it (kill) instead of finding a half-closed pipe. Its messages go to an unnamed temporary
    file, read only when it fails: a pipe could fill up and stop it."""

    def __init__(self, ffmpeg, path, name, size, fps, codec, crf):
        self.even = codec != 'mjpeg'  # the 4:2:0 codecs
        height, width = (size[0] + size[0] % 2, size[1] + size[1] % 2) if self.even else size
        self.name, self.codec = name, codec
        rate = fractions.Fraction(fps).limit_denominator(1001)  # 29.97002997 -> 30000/1001
        if codec in CRF_CODECS:
            quality = ['-crf', str(DEFAULT_CRF if crf is None else crf), '-preset', 'medium']
            if codec == 'libx265':
                quality += ['-x265-params', 'log-level=error', *(['-tag:v', 'hvc1'] if path.endswith('.mp4') else [])]
        else:
            quality = ['-q:v', str(QUALITY)]
        # 4:2:0 with the BT.601 matrix, tagged as such: players read the tag, and OpenCV, which ignores it and
        # assumes BT.601, decodes the same colours (with BT.709 its frames were 4-7 dB further from the PNGs).
        # MJPEG (the .avi default, an editing format) keeps full colour resolution: 4:4:4, full range.
        colour = (['-pix_fmt', 'yuvj444p'] if codec == 'mjpeg' else
                  ['-vf', 'scale=out_color_matrix=bt601:out_range=tv', '-pix_fmt', 'yuv420p',
                   '-colorspace', 'smpte170m', '-color_primaries', 'bt709', '-color_trc', 'bt709'])
        command = [ffmpeg, '-nostdin', '-hide_banner', '-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24',
                   '-s', f'{width}x{height}', '-framerate', f'{rate.numerator}/{rate.denominator}', '-i', 'pipe:0',
                   '-an', '-c:v', codec, *quality, *colour,
                   *(['-movflags', '+faststart'] if path.endswith('.mp4') else []), path]
        self.errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                            stderr=self.errors, start_new_session=True)
        except OSError as error:
            self.errors.close()
            raise InferenceError(f'{ffmpeg} cannot be run ({error.strerror or error}), so the video {name} '
                                 f'cannot be written') from None

    def write(self, image):
        try:
            self.process.stdin.write(np.ascontiguousarray(_even(image) if self.even else image).data)
        except BrokenPipeError:  # ffmpeg has stopped: its status and message say why
            self.finish()
            raise InferenceError(f'ffmpeg stopped reading the frames of the video {self.name} '
                                 f'before the last one') from None

    def finish(self):
        """Close the stream and wait for ffmpeg; its failure is one sentence with its last message."""
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        code = self.process.wait()
        self.errors.seek(0)
        lines = self.errors.read().decode('utf-8', 'replace').strip().splitlines()
        self.errors.close()
        if code != 0:
            raise InferenceError(f'ffmpeg failed to write the video {self.name} with '
                                 f'{self.codec} (exit status {code}): {lines[-1] if lines else "no message"}')

    def kill(self):
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(BrokenPipeError, OSError):
            self.process.stdin.close()
        self.process.wait()
        self.errors.close()


class OpenCVWriter:
    """OpenCV's writer, for a machine without ffmpeg."""

    def __init__(self, path, size, fps, video_format):
        self.writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*OPENCV_FOURCC[video_format]), fps,
                                      (size[1], size[0]))
        if not self.writer.isOpened():
            raise InferenceError(f'OpenCV cannot write {video_format} video files on this machine')

    def write(self, image):
        self.writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    def finish(self):
        self.writer.release()

    kill = finish
