"""sbvsr-adapt on a tiny seeded model and a tiny clip: the input weights stay as they were, the
adapted ones differ and load, the step budget holds, the frames are written, bad input is
one sentence, and Ctrl-C leaves nothing behind."""
import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import child_env, parity_file
from interrupting import signal_when_ready, snapshot
from jittor_self_blind_vsr import adapt
from jittor_self_blind_vsr.infer import restorer
from jittor_self_blind_vsr.infer.sources import collect_clips
from jittor_self_blind_vsr.utils.checkpoint import load_state_dict_file, save_state_dict_file
from jittor_self_blind_vsr.utils.image_io import list_images, read_image, write_image
from parity_weights import seeded_state

N_FRAMES = 7
LR_H, LR_W = 24, 32
STEPS = 3


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """LR/clip and HR/clip (a smooth random canvas panning), and the seeded small model."""
    root = tmp_path_factory.mktemp('adapt')
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(rng.random((LR_H * 4 + 20, LR_W * 4 + 20, 3)).astype(np.float32), (0, 0), 3)
    canvas = (canvas - canvas.min()) / (canvas.max() - canvas.min()) * 255
    for sub in ('LR', 'HR'):
        (root / sub / 'clip').mkdir(parents=True)
    for i in range(N_FRAMES):
        hr = canvas[i:i + LR_H * 4, 2 * i:2 * i + LR_W * 4].round().astype(np.uint8)
        write_image(root / 'HR' / 'clip' / f'{i:08d}.png', hr)
        write_image(root / 'LR' / 'clip' / f'{i:08d}.png', cv2.resize(hr, (LR_W, LR_H), interpolation=cv2.INTER_AREA))
    save_state_dict_file(seeded_state(parity_file('small_config_keys.tsv'), 0), root / 'small.pkl')
    return root


def argv(data, out, *extra, gt=True):
    return ['--model_path', str(data / 'small.pkl'), '--input_path', str(data / 'LR' / 'clip'),
            *(['--gt_path', str(data / 'HR' / 'clip')] if gt else []), '--result_path', str(out),
            '--patch_size', '16', '--batch_size', '1', '--device', 'cpu', *extra]


@pytest.fixture(scope='module')
def adapted(data, tmp_path_factory):
    """(input hash before, output folder, what it printed) of one run with --steps STEPS."""
    out = tmp_path_factory.mktemp('adapted') / 'out'
    before = sha256(data / 'small.pkl')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert adapt.main(argv(data, out, '--steps', str(STEPS))) == 0
    return before, out, printed.getvalue()


def test_the_time_split_is_stated(adapted):
    *_, printed = adapted
    record = json.loads((adapted[1] / 'clip' / 'adapted.json').read_text())
    assert 0 < record['first_step_seconds'] <= record['wall_seconds']
    line = next(line for line in printed.splitlines() if line.startswith('Adapted for'))
    assert line == (f'Adapted for {STEPS} steps in {record["wall_seconds"]:.0f} s ({record["cpu_seconds"]:.0f} CPU '
                    f'seconds); the first step took {record["first_step_seconds"]:.0f} s of them, Jittor\'s compiling '
                    f'included, and is not counted in --minutes')


def test_input_weights_are_untouched(data, adapted):
    before, *_ = adapted
    assert sha256(data / 'small.pkl') == before


def test_adapted_weights_differ_from_the_input_and_load(data, adapted):
    _, out, _ = adapted
    weights = out / 'clip' / 'adapted.pkl'
    original, tuned = load_state_dict_file(data / 'small.pkl'), load_state_dict_file(weights)
    assert original.keys() == tuned.keys()
    changed = [key for key in original if not np.array_equal(original[key], tuned[key])]
    # Adam moves every trained weight by about lr per step; PWC-Net's rate is 20x smaller
    assert 'in_conv.0.weight' in changed and 'out_conv.0.weight' in changed
    step = np.abs(original['in_conv.0.weight'] - tuned['in_conv.0.weight']).max()
    assert 0.5 * adapt.DEFAULT_LR < step <= STEPS * adapt.DEFAULT_LR * 1.01
    net, config = restorer.load_model(str(weights), 4, 5, True)
    assert config['n_feat'] == 32
    record = json.loads((out / 'clip' / 'adapted.json').read_text())
    assert record['adapted_model_sha256'] == sha256(weights)
    assert record['input_model_sha256'] == sha256(data / 'small.pkl')


def test_fast_precision_adapts_with_the_fast_arithmetic(data, adapted, tmp_path):
    """--precision fast (a child process: the precision is fixed when Jittor starts) adapts
    with Winograd, the batched window and the fused Adam: weights within rounding of exact's
    adaptation, but not bit for bit, which they would be were the option ignored."""
    out = tmp_path / 'out'
    done = subprocess.run([sys.executable, '-m', 'jittor_self_blind_vsr.adapt',
                           *argv(data, out, '--steps', str(STEPS), '--precision', 'fast')],
                          capture_output=True, text=True, timeout=1800, env=child_env(),
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'not available' not in done.stderr
    original = load_state_dict_file(data / 'small.pkl')
    exact = load_state_dict_file(adapted[1] / 'clip' / 'adapted.pkl')
    fast = load_state_dict_file(out / 'clip' / 'adapted.pkl')
    assert any(not np.array_equal(exact[key], fast[key]) for key in exact)
    for key in exact:
        moved = np.abs(exact[key] - original[key]).max()
        assert np.abs(fast[key] - exact[key]).max() <= 0.05 * moved + 1e-7, key


def test_step_budget_is_respected(adapted):
    _, out, _ = adapted
    record = json.loads((out / 'clip' / 'adapted.json').read_text())
    # `steps` is Adam's own step count, not the budget's
    assert record['steps'] == record['max_steps'] == STEPS
    assert len(record['epoch_mean_losses']['loss_total']) == 1


def test_result_frames_are_written_with_the_adapted_weights(data, adapted):
    _, out, _ = adapted
    frames = list_images(out / 'clip' / 'adapted' / 'clip')
    # without --border the frames that are the centre of a 5-frame window
    assert [os.path.basename(p) for p in frames] == [f'{i:08d}.png' for i in range(2, N_FRAMES - 2)]
    assert read_image(frames[0]).shape == (LR_H * 4, LR_W * 4, 3)
    metrics = json.loads((out / 'clip' / 'adapted' / 'metrics.json').read_text())
    assert metrics['model_path'] == str(out / 'clip' / 'adapted.pkl')
    assert len(metrics['videos']['clip']['frames']) == N_FRAMES - 4


def test_training_set_links_frame_folders_and_decodes_videos(data, tmp_path):
    video = tmp_path / 'movie.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 25, (LR_W, LR_H))
    for path in list_images(data / 'LR' / 'clip'):
        writer.write(cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR))
    writer.release()
    from_video = collect_clips(adapt.parse_args(['--input_path', str(video)]))
    capture = cv2.VideoCapture(str(video))  # decoded independently of the package's reader
    decoded = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        decoded.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    with adapt.training_set(from_video) as root:
        staged = [read_image(p) for p in list_images(os.path.join(root, 'movie'))]
        assert len(staged) == N_FRAMES and all(np.array_equal(a, b) for a, b in zip(staged, decoded))
    assert not os.path.exists(root)
    from_folder = collect_clips(adapt.parse_args(['--input_path', str(data / 'LR' / 'clip')]))
    with adapt.training_set(from_folder) as root:
        assert os.path.realpath(os.path.join(root, 'clip')) == os.path.realpath(data / 'LR' / 'clip')
    assert not os.path.exists(root)
    assert len(list_images(data / 'LR' / 'clip')) == N_FRAMES


def test_time_budget_ends_after_the_step_under_way_and_leaves_out_the_first():
    budget = adapt.Budget(None, 0.05)
    assert not budget.exhausted()
    budget.wall_start -= 100  # a first step that compiled for 100 s
    assert not budget.after_step() and budget.first_step >= 100 and budget.counted() < 0.05
    budget.wall_start -= 0.1
    assert budget.after_step() and budget.done == 2
    steps = adapt.Budget(2, 3600)
    assert [steps.after_step(), steps.after_step()] == [False, True]


def test_rerun_replaces_its_own_weights_but_not_a_changed_file(data, adapted, capsys):
    _, out, _ = adapted
    weights = out / 'clip' / 'adapted.pkl'
    args = adapt.parse_args(argv(data, out, '--steps', '1'))
    adapt.check_weights_destination(args)  # its own, unchanged: accepted
    weights.write_bytes(weights.read_bytes() + b'edited')
    edited = weights.read_bytes()
    assert adapt.main(argv(data, out, '--steps', '1')) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'sbvsr-adapt: {weights} exists and is not adapted weights written')
    assert weights.read_bytes() == edited


def one_sentence(capsys, call):
    """The exit status and the single stderr line of a failed call."""
    status = call()
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and len(err) == 1 and err[0].startswith('sbvsr-adapt: '), err
    return err[0]


def test_bad_inputs_exit_with_one_sentence(data, tmp_path, capsys):
    out = tmp_path / 'out'
    line = one_sentence(capsys, lambda: adapt.main(argv(data, out, '--input_path', str(tmp_path / 'missing'))))
    assert 'the input path' in line and 'does not exist' in line
    text = tmp_path / 'model.pkl'
    text.write_text('not a model')
    line = one_sentence(capsys, lambda: adapt.main(argv(data, out, '--model_path', str(text), '--steps', '1')))
    assert str(text) in line
    assert text.read_text() == 'not a model'
    short = tmp_path / 'short'
    short.mkdir()
    for path in list_images(data / 'LR' / 'clip')[:3]:
        write_image(short / os.path.basename(path), read_image(path))
    line = one_sentence(capsys, lambda: adapt.main(argv(data, out, '--input_path', str(short), '--border', '--steps',
                                                        '1', gt=False)))
    assert line == 'sbvsr-adapt: video short has 3 frames, fewer than the 5 of one training window'
    foreign = out / 'clip'
    foreign.mkdir(parents=True)
    (foreign / 'adapted.json').write_text('{"mine": 1}')
    line = one_sentence(capsys, lambda: adapt.main(argv(data, out, '--steps', '1')))
    assert 'adapted.json exists and was not written by sbvsr-adapt' in line
    assert sorted(p.name for p in foreign.iterdir()) == ['adapted.json']
    # a link to a genuine record elsewhere would be replaced by the new record
    elsewhere = tmp_path / 'elsewhere.json'
    elsewhere.write_text(json.dumps({'tool': 'sbvsr-adapt', 'adapted_model_sha256': '0' * 64}))
    (foreign / 'adapted.json').unlink()
    (foreign / 'adapted.json').symlink_to(elsewhere)
    line = one_sentence(capsys, lambda: adapt.main(argv(data, out, '--steps', '1')))
    assert line == (f'sbvsr-adapt: {foreign / "adapted.json"} is a link, and sbvsr-adapt writes nothing over links; '
                    'remove it or give another --result_path, --dataset_name or --blur_type')
    assert (foreign / 'adapted.json').is_symlink() and sorted(p.name for p in foreign.iterdir()) == ['adapted.json']
    with pytest.raises(SystemExit) as exit_info:
        adapt.main(argv(data, out, '--steps', '0'))
    assert exit_info.value.code == 2
    assert "argument --steps: must be an integer >= 1, not '0'" in capsys.readouterr().err
    a_file = tmp_path / 'a_file'
    a_file.write_text('mine')
    line = one_sentence(capsys, lambda: adapt.main(argv(data, a_file, '--steps', '1')))
    assert line == (f'sbvsr-adapt: {a_file} is not a folder, so the adapted weights cannot be written into it; '
                    'give another --result_path')
    assert a_file.read_text() == 'mine'
    with pytest.raises(SystemExit) as exit_info:
        adapt.main(argv(data, '', '--steps', '1'))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "sbvsr-adapt: error: argument --result_path: must name a folder, not ''"


def test_the_input_model_is_never_the_output(data, tmp_path, capsys):
    # a second adaptation that starts from the first one's weights and would write them again
    out = tmp_path / 'out'
    (out / 'clip').mkdir(parents=True)
    model = out / 'clip' / 'adapted.pkl'
    model.write_bytes((data / 'small.pkl').read_bytes())
    (out / 'clip' / 'adapted.json').write_text(json.dumps({'tool': 'sbvsr-adapt',
                                                            'adapted_model_sha256': sha256(model)}))
    before = sha256(model)
    line = one_sentence(capsys, lambda: adapt.main(argv(data, out, '--model_path', str(model), '--steps', '1')))
    assert line == (f'sbvsr-adapt: the adapted weights would overwrite the input model {model}; give another '
                    f'--result_path, --dataset_name or --blur_type')
    assert sha256(model) == before


STOP_WHILE_ADAPTING = '''
from jittor_self_blind_vsr import adapt

def after_step(self):
    ready()  # one optimiser step is done: adaptation is under way
    time.sleep(60)

adapt.Budget.after_step = after_step
sys.exit(adapt.main(sys.argv[1:]))
'''


def test_ctrl_c_while_adapting_leaves_no_file(data, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    scratch = tmp_path / 'tmp'
    scratch.mkdir()
    monkeypatch.setenv('TMPDIR', str(scratch))  # where the training set is staged
    inputs = snapshot(data)
    code, err = signal_when_ready(STOP_WHILE_ADAPTING, argv(data, out, '--steps', '5'), signal.SIGINT, group=True)
    assert code == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == (f'sbvsr-adapt: interrupted (SIGINT): no adapted weights were written '
                                            f'and the input model {data / "small.pkl"} is unchanged; nothing was moved '
                                            f'into {out / "clip" / "adapted"} (it was not created) and no restored '
                                            f'frames were kept')
    assert not out.exists()
    assert list(scratch.iterdir()) == []
    assert snapshot(data) == inputs


STOP_WHILE_RESTORING = '''
from jittor_self_blind_vsr import adapt
from jittor_self_blind_vsr.infer.results import InferenceRun
add_frame = InferenceRun.add_frame
added = []

def add_frame_then_wait(self, clip, frame):
    add_frame(self, clip, frame)  # the frame is staged and in the manifest of the resumable folder
    added.append(frame.name)
    if len(added) == 2:
        ready()
        time.sleep(60)

InferenceRun.add_frame = add_frame_then_wait
sys.exit(adapt.main(sys.argv[1:]))
'''


def test_ctrl_c_while_restoring_with_resume_names_the_kept_frames(data, tmp_path):
    out = tmp_path / 'out'
    code, err = signal_when_ready(STOP_WHILE_RESTORING, argv(data, out, '--steps', '1', '--resume'), signal.SIGINT,
                                  group=True)
    assert code == 130, err[-3000:]
    weights, resumable, final = out / 'clip' / 'adapted.pkl', out / 'clip' / '.adapted.resumable', out / 'clip' / 'adapted'
    assert err.strip().splitlines()[-1] == (f'sbvsr-adapt: interrupted (SIGINT): the adapted weights {weights} are '
                                            f'complete; nothing was moved into {final} (it was not created); 2 '
                                            f'restored frames are kept in {resumable}, and --resume continues from '
                                            f'there')
    assert len(list_images(resumable / 'clip')) == 2 and not final.exists()
    assert 'Traceback' not in err


def test_a_diverging_learning_rate_saves_no_weights(data, tmp_path, capsys):
    out = tmp_path / 'out'
    before = sha256(data / 'small.pkl')
    line = one_sentence(capsys, lambda: adapt.main(argv(data, out, '--steps', '3', '--lr', '1e10')))
    assert line.startswith('sbvsr-adapt: training diverged (')
    assert line.endswith(f'with --lr 1e+10; try a smaller --lr), so no adapted weights were saved and the input '
                         f'model {data / "small.pkl"} is unchanged')
    assert not out.exists()
    assert sha256(data / 'small.pkl') == before


def test_weights_the_last_step_made_nan_are_refused(data):
    args = adapt.parse_args(argv(data, 'out', '--lr', '1e10'))
    state = {'in_conv.0.weight': np.array([1.0, np.nan], np.float32)}
    with pytest.raises(adapt.AdaptError, match=r'^training diverged \(the last step left NaN or infinite values in '
                                               r'in_conv\.0\.weight with --lr 1e\+10; try a smaller --lr\)'):
        adapt.check_finite(args, state)
    adapt.check_finite(args, {'in_conv.0.weight': np.ones(2, np.float32)})
