"""inference.py end to end on a tiny generated dataset with the seeded small model."""
import csv
import errno
import json
import math
import os
import re
import signal
import stat
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, parity_file
from interrupting import signal_when_ready, snapshot
from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer import results, sources
from jittor_self_blind_vsr.runtime import import_jittor
from jittor_self_blind_vsr.utils.checkpoint import save_state_dict_file
from jittor_self_blind_vsr.utils.image_io import read_image, write_image
from parity_weights import seeded_state
from test_image_io import write_bomb_png
from test_metrics import reference_psnr, reference_ssim

VIDEOS = ('clipA', 'clipB')
N_FRAMES = 7
LR_H, LR_W = 24, 32
FRAME_LINE = re.compile(r'^> (\w+)-(\d+) PSNR=([\d.einf+-]+), SSIM=([\d.e+-]+) pre_time:([\d.e+-]+)s, '
                        r'forward_time:([\d.e+-]+)s, post_time:([\d.e+-]+)s, total_time:([\d.e+-]+)s$')


def make_clip(rng):
    """Smooth random HR frames panning across one canvas, LR by area downsampling."""
    canvas = cv2.GaussianBlur(rng.random((LR_H * 4 + 20, LR_W * 4 + 20, 3)).astype(np.float32), (0, 0), 3)
    canvas = (canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255
    hrs, lrs = [], []
    for i in range(N_FRAMES):
        hr = canvas[i:i + LR_H * 4, 2 * i:2 * i + LR_W * 4].round().astype(np.uint8)
        hrs.append(hr)
        lrs.append(cv2.resize(hr, (LR_W, LR_H), interpolation=cv2.INTER_AREA))
    return hrs, lrs


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('infer')
    rng = np.random.default_rng(0)
    for video in VIDEOS:
        hrs, lrs = make_clip(rng)
        for sub, frames in (('HR', hrs), ('LR', lrs)):
            (root / sub / video).mkdir(parents=True)
            for i, frame in enumerate(frames):
                write_image(root / sub / video / f'{i:08d}.png', frame)
    state = seeded_state(parity_file('small_config_keys.tsv'), 0)
    save_state_dict_file(state, root / 'small.pkl')
    return root


@pytest.fixture(scope='module')
def net(data):
    jt = import_jittor('auto')
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    model = PWC_Recons(n_feat=32, extra_RBS=1, recons_RBS=2)
    model.load_numpy_state_dict(seeded_state(parity_file('small_config_keys.tsv'), 0))
    model.eval()
    return jt, model


def cli(data, out, *extra, gt=True):
    args = ['--model_path', str(data / 'small.pkl'), '--input_path', str(data / 'LR'), '--result_path', str(out),
            '--dataset_name', 'REDS4', '--blur_type', 'Gaussian', '--save_image', 'True', *extra]
    if gt:
        args += ['--gt_path', str(data / 'HR')]
    return args


def independent_output(jt, model, lr_paths):
    """The original's per-window path: net({'x', 'infer'}), then *255, clamp, round (halves up), uint8."""
    # the original: float32 tensor, then mul_(1/255)
    x = np.stack([read_image(p).astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255) for p in lr_paths])
    with jt.no_grad():
        recons = model({'x': jt.array(x[None]), 'mode': 'infer'})[0]['recons'].numpy()[0]
    return np.floor(np.clip(recons * 255, 0, 255).astype(np.float64) + 0.5).transpose(1, 2, 0).astype(np.uint8)


def original_windows(names, n_seq, border):
    """The original gene_seq, on file names."""
    if border:
        half = n_seq // 2
        names = names[:half] + names + names[-half:]
    return [names[i:i + n_seq] for i in range(len(names) - 2 * (n_seq // 2))]


@pytest.fixture(scope='module')
def border_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('out')
    assert inference.main(cli(data, out, '--border')) == 0
    return out / 'REDS4' / 'Gaussian'


def test_layout(border_run):
    names = sorted(os.listdir(border_run))
    assert names == ['clipA', 'clipB', 'inference_log.txt', 'metrics.csv', 'metrics.json']
    for video in VIDEOS:
        assert sorted(os.listdir(border_run / video)) == [f'{i:08d}.png' for i in range(N_FRAMES)]
    assert not [n for n in os.listdir(border_run.parent) if n.startswith('.')]  # no staging left



def test_results_folder_has_the_permissions_of_a_made_folder(border_run, tmp_path):
    # the staging folder (tempfile.mkdtemp, mode 0700) becomes the results folder
    made = tmp_path / 'made'
    os.makedirs(made)
    assert stat.S_IMODE(os.stat(border_run).st_mode) == stat.S_IMODE(os.stat(made).st_mode)

def test_images_are_the_models_output(border_run, data, net):
    jt, model = net
    names = [f'{i:08d}' for i in range(N_FRAMES)]
    for window in original_windows(names, 5, border=True)[::3]:
        expected = independent_output(jt, model, [data / 'LR' / 'clipB' / f'{n}.png' for n in window])
        saved = read_image(border_run / 'clipB' / f'{window[2]}.png')
        assert saved.shape == (LR_H * 4, LR_W * 4, 3)
        np.testing.assert_array_equal(saved, expected)


def test_metrics_json_against_independent_formulas(border_run, data):
    metrics = json.loads((border_run / 'metrics.json').read_text())
    all_psnr, all_ssim = [], []
    for video in VIDEOS:
        frames = metrics['videos'][video]['frames']
        assert [f['frame'] for f in frames] == [f'{i:08d}' for i in range(N_FRAMES)]
        for f in frames:
            out = read_image(border_run / video / f'{f["frame"]}.png')
            gt = read_image(data / 'HR' / video / f'{f["frame"]}.png')
            assert abs(f['psnr'] - reference_psnr(gt, out, 4)) < 1e-6
            assert abs(f['ssim'] - reference_ssim(gt, out, 4)) < 1e-6
            assert f['total_time'] == pytest.approx(f['pre_time'] + f['forward_time'] + f['post_time'], abs=1e-4)
        psnr = [f['psnr'] for f in frames]
        ssim = [f['ssim'] for f in frames]
        assert metrics['videos'][video]['avg_psnr'] == pytest.approx(np.mean(psnr), abs=1e-9)
        assert metrics['videos'][video]['avg_ssim'] == pytest.approx(np.mean(ssim), abs=1e-9)
        all_psnr += psnr
        all_ssim += ssim
    assert metrics['total']['avg_psnr'] == pytest.approx(np.mean(all_psnr), abs=1e-9)
    assert metrics['total']['avg_ssim'] == pytest.approx(np.mean(all_ssim), abs=1e-9)
    assert metrics['total']['n_frames'] == 2 * N_FRAMES
    assert metrics['device'] in ('cpu', 'cuda')
    assert metrics['model_path'] == str(data / 'small.pkl')
    assert metrics['settings']['border'] is True and metrics['settings']['align_corners'] is True
    assert metrics['settings']['model_config'] == dict(n_colors=3, n_sequence=5, extra_RBS=1, recons_RBS=2,
                                                       n_feat=32, kernel_size=3, scale=4, ksize=13, flow='pwc')
    assert metrics['warmup'][0]['lr_size'] == [LR_H, LR_W] and metrics['warmup'][0]['seconds'] > 0


def test_log_lines_keep_the_original_format(border_run):
    lines = (border_run / 'inference_log.txt').read_text().splitlines()
    metrics = json.loads((border_run / 'metrics.json').read_text())
    frame_lines = [line for line in lines if line.startswith('> ')]
    assert len(frame_lines) == 2 * N_FRAMES
    expected = []
    for video in VIDEOS:
        for f in metrics['videos'][video]['frames']:
            # exactly the original's format string, fed with the numbers in metrics.json
            expected.append('> {}-{} PSNR={:.5}, SSIM={:.4} pre_time:{:.3}s, forward_time:{:.3}s, post_time:{:.3}s, '
                            'total_time:{:.3}s'.format(video, f['frame'], f['psnr'], f['ssim'], f['pre_time'],
                                                       f['forward_time'], f['post_time'], f['total_time']))
    assert frame_lines == expected
    assert all(FRAME_LINE.match(line) for line in frame_lines)
    for video in VIDEOS:
        v = metrics['videos'][video]
        assert '# Video:{} AVG-PSNR={:.5}, AVG-SSIM={:.4}'.format(video, v['avg_psnr'], v['avg_ssim']) in lines
    t = metrics['total']
    assert '# Total AVG-PSNR={:.5}, AVG-SSIM={:.4}'.format(t['avg_psnr'], t['avg_ssim']) in lines
    assert lines[0].startswith('Inference - ')
    assert 'border: True' in lines and 'scale: 4' in lines
    warm = [line for line in lines if line.startswith('# Warm-up')]
    assert len(warm) == 1 and lines.index(warm[0]) < lines.index(frame_lines[0])


def test_metrics_csv(border_run):
    metrics = json.loads((border_run / 'metrics.json').read_text())
    with open(border_run / 'metrics.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * N_FRAMES
    first = metrics['videos']['clipA']['frames'][0]
    assert rows[0]['video'] == 'clipA' and rows[0]['frame'] == first['frame']
    assert float(rows[0]['psnr']) == first['psnr'] and float(rows[0]['ssim']) == first['ssim']


def test_feature_reuse_equals_independent_windows(net):
    jt, model = net
    from jittor_self_blind_vsr.infer.restorer import WindowRestorer
    rng = np.random.default_rng(3)
    frames = {i: rng.random((1, 3, LR_H, LR_W), dtype=np.float32) for i in range(N_FRAMES)}
    restorer = WindowRestorer(model)
    with jt.no_grad():
        for window in sources.window_indices(N_FRAMES, 5, border=True):
            reused = restorer.restore(window, frames).numpy()
            x = np.stack([frames[i][0] for i in window])[None]
            alone = model({'x': jt.array(x), 'mode': 'infer'})[0]['recons'].numpy()
            np.testing.assert_array_equal(reused, alone)
    assert len(restorer.cache) == N_FRAMES  # every frame's features computed once


@pytest.mark.parametrize('n,border', [(7, False), (7, True), (5, True), (2, True), (4, False)])
def test_windows_follow_gene_seq(n, border):
    names = list(range(n))
    assert sources.window_indices(n, 5, border) == original_windows(names, 5, border)


def test_quick_test_presets_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # holds no model: the preset names the published .pt
    args = inference.parse_args(['--quick_test', 'Realistic_REDS4'])
    assert args.input_path == os.path.join('dataset', 'REDS4_BlurDown_Realistic', 'LR_blurdown_x4')
    assert args.gt_path == os.path.join('dataset', 'REDS4_BlurDown_Realistic', 'HR')
    assert args.model_path == os.path.join('pretrain_models', 'self_blind_vsr_realistic.pt')
    assert (args.dataset_name, args.blur_type, args.scale, args.infer_flag) == ('REDS4', 'Realistic', 4,
                                                                                 'Realistic_REDS4')
    assert args.result_path == 'infer_results'


@pytest.mark.parametrize('present, chosen', [(['.pt'], '.pt'), (['.pkl'], '.pkl'), (['.pkl', '.pt'], '.pt')])
def test_presets_find_the_published_model_file(tmp_path, monkeypatch, present, chosen):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'pretrain_models').mkdir()
    for ext in present:
        (tmp_path / 'pretrain_models' / f'self_blind_vsr_gaussian{ext}').write_bytes(b'')
    expected = os.path.join('pretrain_models', f'self_blind_vsr_gaussian{chosen}')
    assert inference.parse_args(['--quick_test', 'Gaussian_SPMCS']).model_path == expected
    args = inference.parse_args([])
    assert (args.model_path, args.default_model_line) == (expected, None)  # the default model is the Gaussian one


def quiet_env():
    """The environment of a user who set nothing: without the log_silent this process's Jittor set."""
    return {k: v for k, v in os.environ.items() if k != 'log_silent'}


def test_without_model_path_or_published_model_the_shipped_model_runs_and_says_so(data, tmp_path):
    video = tmp_path / 'some.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 25, (LR_W, LR_H))
    for name in sorted(os.listdir(data / 'LR' / 'clipA'))[:5]:
        writer.write(cv2.imread(str(data / 'LR' / 'clipA' / name)))
    writer.release()
    sbvsr_infer = os.path.join(os.path.dirname(sys.executable), 'sbvsr-infer')
    done = subprocess.run([sbvsr_infer, '--input_path', 'some.mp4', '--save_video', 'True'], cwd=tmp_path,
                          env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        'sbvsr-infer: no --model_path given and no pretrain_models/self_blind_vsr_gaussian.pt: using `embedded`, '
        'the small model shipped in the package; the published models (self_blind_vsr_gaussian.pt, '
        'self_blind_vsr_realistic.pt) come from the authors\' Google Drive folder linked in docs/reproduction.md '
        'and go in pretrain_models/')
    assert '[i ' not in done.stderr + done.stdout  # none of Jittor's log lines
    final = tmp_path / 'infer_results' / 'some' / 'unknown'
    assert json.loads((final / 'metrics.json').read_text())['model_path'].endswith('embedded.npz')
    assert len(list((final / 'some').glob('*.png'))) == 1 and (final / 'some.mp4').is_file()


def test_a_command_failing_after_jittor_started_prints_its_sentence_alone(data, tmp_path):
    poisoned = seeded_state(parity_file('small_config_keys.tsv'), 0)
    poisoned['recons_net.0.conv1.bias'][5] = np.nan
    save_state_dict_file(poisoned, tmp_path / 'poisoned.pkl')
    command = [sys.executable, '-m', 'jittor_self_blind_vsr.inference', '--input_path', str(data / 'LR'),
               '--model_path', str(tmp_path / 'poisoned.pkl'), '--result_path', str(tmp_path / 'out')]
    quiet = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 1
    assert quiet.stderr.splitlines() == [
        f'sbvsr-infer: {tmp_path / "poisoned.pkl"} holds NaN or infinite values in recons_net.0.conv1.bias: '
        f'model weights must be finite numbers']
    verbose = subprocess.run(command + ['--verbose'], env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert verbose.returncode == 1 and 'cache_path:' in verbose.stderr  # Jittor's own lines are back
    assert verbose.stderr.splitlines()[-1] == quiet.stderr.splitlines()[-1]


def test_a_missing_model_names_where_the_published_ones_come_from(data, tmp_path, capsys):
    assert inference.main(cli(data, tmp_path / 'out') + ['--model_path', str(tmp_path / 'nope.pt')]) == 1
    assert capsys.readouterr().err.strip() == (
        f'sbvsr-infer: the model {tmp_path / "nope.pt"} does not exist: the published models '
        f'(self_blind_vsr_gaussian.pt, self_blind_vsr_realistic.pt) come from the authors\' Google Drive folder '
        f'linked in docs/reproduction.md and go in pretrain_models/; --model_path embedded runs the small model '
        f'shipped in the package')


def test_the_realistic_preset_cites_the_original_independently_run():
    line = inference.reference_line('Realistic_REDS4')
    for number in ('27.075 dB / 0.7695', '24.775', '27.615', '29.680', '26.229', '--align_corners False'):
        assert number in line
    # the same figures as the documented table
    table = (REPO / 'docs' / 'reproduction.md').read_text()
    assert '| PSNR (dB) | 24.775 | 27.615 | 29.680 | 26.229 | **27.075** |' in table
    assert '| SSIM | 0.6575 | 0.7904 | 0.8470 | 0.7833 | **0.7695** |' in table


def test_options_given_win_over_the_preset():
    args = inference.parse_args(['--model_path', 'mine.pt', '--quick_test', 'Gaussian_Vid4', '--blur_type', 'b',
                                 '--scale', '4', '--result_path', 'out'])
    assert (args.model_path, args.blur_type, args.result_path) == ('mine.pt', 'b', 'out')
    assert args.input_path == os.path.join('dataset', 'Vid4_BlurDown_Gaussian', 'LR_blurdown_x4')
    assert (args.dataset_name, args.infer_flag) == ('Vid4', 'Gaussian_Vid4')


def write_torch_model(state, path):
    """`state` as the published weights are stored: PyTorch's legacy (pre-1.6) format."""
    torch = pytest.importorskip('torch')
    torch.save({key: torch.from_numpy(value) for key, value in state.items()}, path,
               _use_new_zipfile_serialization=False)


def test_a_preset_runs_from_the_repository_root_on_the_published_pt(data, tmp_path, monkeypatch, capsys):
    """The original's layout (dataset/, pretrain_models/) in the working directory; the .pt read without torch."""
    root = tmp_path / 'repo'
    for sub in ('LR_blurdown_x4', 'HR'):
        link_tree(data / sub.replace('_blurdown_x4', ''), root / 'dataset' / 'REDS4_BlurDown_Gaussian' / sub)
    (root / 'pretrain_models').mkdir()
    write_torch_model(seeded_state(parity_file('small_config_keys.tsv'), 0),
                      root / 'pretrain_models' / 'self_blind_vsr_gaussian.pt')
    monkeypatch.chdir(root)
    monkeypatch.setitem(sys.modules, 'torch', None)  # any import of torch from here on fails
    assert inference.main(['--quick_test', 'Gaussian_REDS4']) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        '# Reference: no score of the original with the published weights on Gaussian_REDS4 could be checked '
        'offline; sources and caveats: docs/reproduction.md, "Expected numbers"')
    result = root / 'infer_results' / 'REDS4' / 'Gaussian'
    metrics = json.loads((result / 'metrics.json').read_text())
    assert metrics['model_path'] == str(root / 'pretrain_models' / 'self_blind_vsr_gaussian.pt')
    # the same weights as the .pkl, and an explicit --model_path wins over the preset's
    assert inference.main(['--quick_test', 'Gaussian_REDS4', '--model_path', str(data / 'small.pkl'),
                           '--result_path', 'from_pkl']) == 0
    from_pkl = root / 'from_pkl' / 'REDS4' / 'Gaussian'
    assert json.loads((from_pkl / 'metrics.json').read_text())['model_path'] == str(data / 'small.pkl')
    for video in VIDEOS:
        names = sorted(os.listdir(result / video))
        assert names == ['00000002.png', '00000003.png', '00000004.png'] == sorted(os.listdir(from_pkl / video))
        for name in names:
            np.testing.assert_array_equal(read_image(result / video / name), read_image(from_pkl / video / name))


def test_video_file_input_and_video_output(data, net, tmp_path):
    video = tmp_path / 'walk.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 12, (LR_W, LR_H))
    for i in range(N_FRAMES):
        writer.write(cv2.cvtColor(read_image(data / 'LR' / 'clipA' / f'{i:08d}.png'), cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / 'out'
    args = ['--model_path', str(data / 'small.pkl'), '--input_path', str(video), '--gt_path',
            str(data / 'HR' / 'clipA'), '--result_path', str(out), '--blur_type', 'real', '--save_video']
    assert inference.main(args) == 0
    result = out / 'walk' / 'real'  # dataset name defaults to the input's name
    assert sorted(os.listdir(result)) == ['inference_log.txt', 'metrics.csv', 'metrics.json', 'walk', 'walk.mp4']
    assert sorted(os.listdir(result / 'walk')) == ['00000002.png', '00000003.png', '00000004.png']
    capture = cv2.VideoCapture(str(result / 'walk.mp4'))
    decoded = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame)
    assert len(decoded) == 3 and decoded[0].shape == (LR_H * 4, LR_W * 4, 3)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12)
    # the clip's frames as OpenCV decodes them are the model's input
    jt, model = net
    capture = cv2.VideoCapture(str(video))
    lr = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(5)]
    x = np.stack([f.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255) for f in lr])[None]
    with jt.no_grad():
        recons = model({'x': jt.array(x), 'mode': 'infer'})[0]['recons'].numpy()[0]
    expected = np.floor(np.clip(recons * 255, 0, 255).astype(np.float64) + 0.5).transpose(1, 2, 0).astype(np.uint8)
    np.testing.assert_array_equal(read_image(result / 'walk' / '00000002.png'), expected)
    metrics = json.loads((result / 'metrics.json').read_text())
    frame = metrics['videos']['walk']['frames'][0]
    gt = read_image(data / 'HR' / 'clipA' / '00000002.png')
    assert abs(frame['psnr'] - reference_psnr(gt, expected, 4)) < 1e-6
    assert abs(frame['ssim'] - reference_ssim(gt, expected, 4)) < 1e-6


def test_no_gt_mode(data, tmp_path, capsys):
    out = tmp_path / 'out'
    assert inference.main(cli(data, out, gt=False)) == 0
    result = out / 'REDS4' / 'Gaussian'
    assert sorted(os.listdir(result / 'clipA')) == ['00000002.png', '00000003.png', '00000004.png']
    lines = (result / 'inference_log.txt').read_text().splitlines()
    frame_lines = [line for line in lines if line.startswith('> ')]
    assert len(frame_lines) == 6
    assert all(re.match(r'^> clip[AB]-\d{8} pre_time:\S+s, forward_time:\S+s, post_time:\S+s, total_time:\S+s$', l)
               for l in frame_lines)
    assert not any('PSNR' in line for line in lines)
    assert frame_lines[0] in capsys.readouterr().out  # the log is also printed
    metrics = json.loads((result / 'metrics.json').read_text())
    assert 'avg_psnr' not in metrics['total'] and 'psnr' not in metrics['videos']['clipA']['frames'][0]
    assert metrics['settings']['gt_path'] is None


def test_current_folder_as_input_is_named_after_the_folder(data, tmp_path, monkeypatch):
    monkeypatch.chdir(data / 'LR' / 'clipA')
    out = tmp_path / 'out'
    argv = ['--model_path', str(data / 'small.pkl'), '--input_path', '.', '--result_path', str(out)]
    assert inference.main(argv) == 0
    result = out / 'clipA' / 'unknown'
    assert sorted(os.listdir(result)) == ['clipA', 'inference_log.txt', 'metrics.csv', 'metrics.json']
    assert sorted(os.listdir(result / 'clipA')) == ['00000002.png', '00000003.png', '00000004.png']


@pytest.mark.parametrize('command', [
    [sys.executable, os.path.join('jittor_self_blind_vsr', 'inference.py')],  # the file, as the original is run
    [os.path.join(os.path.dirname(sys.executable), 'sbvsr-infer')],
])
def test_launchers_report_bad_input(tmp_path, command):
    if not os.path.exists(command[0]):
        pytest.skip('console script not installed')
    proc = subprocess.run(command + ['--input_path', str(tmp_path / 'missing'), '--result_path', str(tmp_path / 'o')],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f'sbvsr-infer: the input path {tmp_path / "missing"} does not exist'
    assert not (tmp_path / 'o').exists()


# ---------------------------------------------------------------- bad input

def link_tree(src, dst, skip=()):
    """Copy a dataset folder as symlinks to its frames, leaving out `skip` (relative paths)."""
    for folder, _, files in os.walk(src):
        rel = os.path.relpath(folder, src)
        if rel in skip:
            continue
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for name in files:
            if os.path.join(rel, name) not in skip:
                os.symlink(os.path.join(folder, name), os.path.join(dst, rel, name))
    return dst


def bad_cases(data, tmp):
    broken_model = seeded_state(parity_file('small_config_keys.tsv'), 0)
    del broken_model['recons_net.1.conv2.bias']
    save_state_dict_file(broken_model, tmp / 'broken.pkl')
    (tmp / 'notes.pkl').write_text('not a model')
    featureless = seeded_state(parity_file('small_config_keys.tsv'), 0)
    featureless['in_conv.0.weight'] = np.zeros((0, 3, 3, 3), np.float32)  # implies n_feat = 0
    save_state_dict_file(featureless, tmp / 'featureless.pkl')
    poisoned = seeded_state(parity_file('small_config_keys.tsv'), 0)
    poisoned['recons_net.0.conv1.bias'][5] = np.nan  # the frames would come out black
    save_state_dict_file(poisoned, tmp / 'poisoned.pkl')
    bomb = link_tree(data / 'LR', tmp / 'bomb')
    os.unlink(bomb / 'clipA' / '00000002.png')
    write_bomb_png(bomb / 'clipA' / '00000002.png')
    garbage = link_tree(data / 'LR', tmp / 'garbage')
    os.unlink(garbage / 'clipB' / '00000003.png')
    (garbage / 'clipB' / '00000003.png').write_bytes(b'\x00garbage')
    return {
        'missing input': (['--input_path', str(tmp / 'nope')], 'does not exist'),
        'missing model': (['--model_path', str(tmp / 'nope.pkl')], 'does not exist'),
        'different videos': (['--gt_path', str(link_tree(data / 'HR', tmp / 'gt1', skip={'clipB'}))],
                             'different videos'),
        'frame counts': (['--gt_path', str(link_tree(data / 'HR', tmp / 'gt2', skip={'clipB/00000006.png'}))],
                         '7 input frames but 6 GT frames'),
        'GT size': (['--gt_path', str(data / 'LR')], '4 times the input size'),
        'unreadable image': (['--input_path', str(garbage)], 'cannot read image'),
        'model not a checkpoint': (['--model_path', str(tmp / 'notes.pkl')], 'notes.pkl'),
        'model keys': (['--model_path', str(tmp / 'broken.pkl')], 'recons_net.1.conv2.bias'),
        'model unbuildable': (['--model_path', str(tmp / 'featureless.pkl')],
                              'featureless.pkl holds an in_conv.0.weight of shape 0x3x3x3: the model needs at '
                              'least one feature and one colour channel'),
        'model folder': (['--model_path', str(tmp)], f'{tmp} is a folder, not a checkpoint file'),
        'model NaN': (['--model_path', str(tmp / 'poisoned.pkl')],
                      'holds NaN or infinite values in recons_net.0.conv1.bias: model weights must be finite numbers'),
        'image bomb': (['--input_path', str(bomb)], 'pixels, too many for a video frame (a decompression bomb?)'),
        'model scale': (['--scale', '1', '--gt_path', str(data / 'LR')], 'upsamples by 4, but --scale is 1'),
    }


def test_bad_input_one_sentence_nothing_written(data, tmp_path, capsys):
    out = tmp_path / 'out'
    for name, (extra, message) in bad_cases(data, tmp_path).items():
        capsys.readouterr()
        assert inference.main(cli(data, out) + extra) == 1, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('sbvsr-infer: ') and message in err[0], (name, err)
        assert not out.exists(), name


def test_result_path_that_is_a_file_is_one_sentence(data, tmp_path, capsys):
    (tmp_path / 'out').write_text('a file')
    capsys.readouterr()
    assert inference.main(cli(data, tmp_path / 'out')) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'sbvsr-infer: cannot create the results folder {tmp_path / "out" / "REDS4"}: Not a directory']
    assert (tmp_path / 'out').read_text() == 'a file'


def test_failure_mid_run_keeps_previous_results(data, tmp_path, capsys):
    out = tmp_path / 'out'
    assert inference.main(cli(data, out)) == 0
    result = out / 'REDS4' / 'Gaussian'
    before = (result / 'metrics.json').read_bytes()
    truncated = link_tree(data / 'LR', tmp_path / 'truncated')
    whole = (data / 'LR' / 'clipB' / '00000005.png').read_bytes()
    os.unlink(truncated / 'clipB' / '00000005.png')
    (truncated / 'clipB' / '00000005.png').write_bytes(whole[:len(whole) // 2])  # header fine, data cut
    capsys.readouterr()
    assert inference.main(cli(data, out, '--input_path', str(truncated))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'cannot read image' in err[0]
    assert (result / 'metrics.json').read_bytes() == before
    assert sorted(os.listdir(out / 'REDS4')) == ['Gaussian']  # staging folder removed
    assert math.isfinite(json.loads(before)['total']['avg_psnr'])


# ---------------------------------------------------------------- what may be replaced

def refused(data, capsys, argv, message):
    capsys.readouterr()
    assert inference.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('sbvsr-infer: ') and message in err[0], err
    return err[0]


def test_a_folder_that_is_no_result_is_refused_before_any_work(data, tmp_path, capsys):
    user = tmp_path / 'out' / 'REDS4' / 'Gaussian'
    user.mkdir(parents=True)
    (user / 'paper.tex').write_text('\\documentclass{article}')
    before = snapshot(tmp_path / 'out')
    # a missing model proves that the refusal comes before the model is loaded
    err = refused(data, capsys, cli(data, tmp_path / 'out', '--model_path', str(tmp_path / 'no_model.pkl')),
                  'is not an earlier result of sbvsr-infer (it has no inference_log.txt)')
    assert str(user) in err
    assert snapshot(tmp_path / 'out') == before


def test_a_result_folder_with_a_foreign_file_is_refused(data, tmp_path, capsys):
    out = tmp_path / 'out'
    assert inference.main(cli(data, out)) == 0
    (out / 'REDS4' / 'Gaussian' / 'clipA' / 'notes.txt').write_text('mine')
    before = snapshot(out)
    refused(data, capsys, cli(data, out), 'it holds clipA/notes.txt')
    assert snapshot(out) == before


def test_the_input_clip_is_never_the_output(data, tmp_path, capsys):
    clips = link_tree(data / 'LR', tmp_path / 'in' / 'LR')
    before = snapshot(tmp_path / 'in')
    argv = cli(data, tmp_path / 'in', '--input_path', str(clips / 'clipA'), '--dataset_name', 'LR',
               '--blur_type', 'clipA', gt=False)
    refused(data, capsys, argv, 'lie inside one another')
    refused(data, capsys, cli(data, clips, '--input_path', str(clips), gt=False), 'lie inside one another')
    refused(data, capsys, cli(data, data / 'HR' / 'x', gt=True), f'the GT path {data / "HR"}')
    assert snapshot(tmp_path / 'in') == before


def test_an_earlier_result_as_input_is_refused(data, tmp_path, capsys):
    out = tmp_path / 'out'
    assert inference.main(cli(data, out, gt=False)) == 0
    result = out / 'REDS4' / 'Gaussian'
    before = snapshot(out)
    argv = cli(data, out, '--input_path', str(result / 'clipA'), gt=False)
    refused(data, capsys, argv, 'lie inside one another')
    assert snapshot(out) == before


def test_an_earlier_result_is_replaced(data, tmp_path, capsys):
    out = tmp_path / 'out'
    assert inference.main(cli(data, out, '--infer_flag', 'first', '--save_video', gt=False)) == 0
    assert (out / 'REDS4' / 'Gaussian' / 'clipA.mp4').is_file()
    assert inference.main(cli(data, out, '--infer_flag', 'second')) == 0
    result = out / 'REDS4' / 'Gaussian'
    assert (result / results.LOG_NAME).read_text().startswith('Inference - second')
    assert not (result / 'clipA.mp4').exists()
    assert sorted(os.listdir(out / 'REDS4')) == ['Gaussian']


def test_full_disk_at_the_start_leaves_nothing_and_names_the_folder(data, tmp_path, capsys, monkeypatch):
    class FullDisk:
        """A log file on a full disk: writes are buffered, every flush (and so close) fails."""

        def __init__(self, path, *args, **kwargs):
            self.file = open(path, *args, **kwargs)
            self.name, self.closed = path, False

        def write(self, text):
            return len(text)

        def flush(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            self.file.close()
            self.closed = True
            self.flush()

    monkeypatch.setattr(results, 'open', FullDisk, raising=False)
    out = tmp_path / 'out'
    err = refused(data, capsys, cli(data, out), 'No space left on device')
    final = out / 'REDS4' / 'Gaussian'
    assert err == (f'sbvsr-infer: No space left on device (the results in {final}); nothing was moved into {final} '
                   f'(it was not created) and no restored frames were kept')
    assert not out.exists()


# ---------------------------------------------------------------- signals

SLOW_INFERENCE = '''
from jittor_self_blind_vsr import inference
from jittor_self_blind_vsr.infer.results import InferenceRun
add_frame = InferenceRun.add_frame

def slow_add_frame(self, clip, frame):
    add_frame(self, clip, frame)  # a frame is written into the staging folder
    ready()
    time.sleep(0.5)

InferenceRun.add_frame = slow_add_frame
sys.exit(inference.main(sys.argv[1:]))
'''


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_a_signal_mid_run_keeps_the_earlier_result(data, tmp_path, capsys, signum):
    out = tmp_path / 'out'
    assert inference.main(cli(data, out)) == 0
    before = snapshot(out)
    code, err = signal_when_ready(SLOW_INFERENCE, cli(data, out, '--infer_flag', 'second'), signum)
    assert code == 128 + signum, err[-3000:]
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == (f'sbvsr-infer: interrupted ({name}): nothing was moved into '
                                            f'{out / "REDS4" / "Gaussian"} (it is unchanged) and no restored frames '
                                            f'were kept')
    assert snapshot(out) == before  # byte-identical, and no staging folder left
