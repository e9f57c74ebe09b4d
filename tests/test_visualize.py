"""visualize_results on one of our runs and a log in the original PyTorch inference.py's format."""
import json
import os

import cv2
import pytest

from jittor_self_blind_vsr import inference, visualize_results as vis
from test_inference import cli, data  # noqa: F401  (the tiny dataset fixture)

# Written as the original inference.py writes its log (header, per-frame lines, averages).
ORIGINAL_LOG = """Inference - Gaussian_REDS4
input_path: ../dataset/REDS4_BlurDown_Gaussian/LR_blurdown_x4
gt_path: ../dataset/REDS4_BlurDown_Gaussian/HR
model_path: ../pretrain_models/self_blind_vsr_gaussian.pt
result_path: ../infer_results/infer_Gaussian_REDS4
border: False
save_image: True
n_seq: 5
scale: 4
size_must_mode: 1
device: cuda
Loading model from ../pretrain_models/self_blind_vsr_gaussian.pt
> clipA-00000002 PSNR=28.5, SSIM=0.8125 pre_time:0.0312s, forward_time:0.25s, post_time:1.75s, total_time:2.03s
> clipA-00000003 PSNR=27.5, SSIM=0.8075 pre_time:0.0288s, forward_time:0.25s, post_time:1.25s, total_time:1.53s
> clipB-00000002 PSNR=30.25, SSIM=0.9 pre_time:0.03s, forward_time:1.06e+02s, post_time:2.0s, total_time:1.08e+02s
# Video:clipA AVG-PSNR=28.0, AVG-SSIM=0.81
# Video:clipB AVG-PSNR=30.25, AVG-SSIM=0.9
# Total AVG-PSNR=28.75, AVG-SSIM=0.84
"""


@pytest.fixture(scope='module')
def ours(data, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp('vis_out')
    assert inference.main(cli(data, out)) == 0
    return out / 'REDS4' / 'Gaussian'


def test_parse_original_log(tmp_path):
    path = tmp_path / 'infer_Gaussian_REDS4' / 'inference_log_2021-01-01 10:00:00.txt'
    path.parent.mkdir()
    path.write_text(ORIGINAL_LOG)
    run = vis.load_run(str(path))
    assert run.label.endswith('infer_Gaussian_REDS4')
    assert list(run.videos) == ['clipA', 'clipB']
    assert [f.frame for f in run.videos['clipA']] == ['00000002', '00000003']
    assert run.videos['clipB'][0].times == dict(pre_time=0.03, forward_time=106.0, post_time=2.0, total_time=108.0)
    table = vis.quality_table([run])[run.label]
    assert table['clipA'] == pytest.approx((28.0, 0.81))
    assert table['Total'] == pytest.approx((28.75, 0.84))  # the log's own "# Total" line
    assert vis.time_table([run])[run.label]['post_time'] == pytest.approx(5.0 / 3)


def test_a_folder_of_the_original_stands_for_its_one_log(tmp_path, capsys):
    folder = tmp_path / 'infer_Gaussian_REDS4'
    folder.mkdir()
    (folder / 'inference_log_2021-01-01 10:00:00.txt').write_text(ORIGINAL_LOG)
    run = vis.load_run(str(folder))
    assert list(run.videos) == ['clipA', 'clipB'] and run.label.endswith('infer_Gaussian_REDS4')
    (folder / 'inference_log_2021-01-02 09:00:00.txt').write_text(ORIGINAL_LOG)
    assert vis.main([str(folder), '--output_dir', str(tmp_path / 'charts')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'holds 2 logs of the original' in err[0] and 'pass the one' in err[0]
    assert not (tmp_path / 'charts').exists()


def test_ours_and_original_charts(ours, tmp_path, capsys):
    log = tmp_path / 'inference_log_orig.txt'
    log.write_text(ORIGINAL_LOG)
    charts = tmp_path / 'charts'
    assert vis.main([str(ours), str(log), '--labels', 'jittor', 'pytorch', '--output_dir', str(charts)]) == 0
    assert sorted(os.listdir(charts)) == sorted(vis.CHARTS)
    for name in vis.CHARTS:
        image = cv2.imread(str(charts / name))
        assert image is not None and min(image.shape[:2]) > 200 and image.std() > 0
    printed = capsys.readouterr().out.split()
    assert sorted(os.path.basename(p) for p in printed) == sorted(vis.CHARTS)


def test_metrics_json_and_log_of_one_run_agree(ours):
    from_json = vis.load_run(str(ours / 'metrics.json'), 'json')
    from_log = vis.load_run(str(ours / 'inference_log.txt'), 'log')
    assert list(from_json.videos) == list(from_log.videos)
    # the log rounds PSNR to 5 and SSIM to 4 significant digits
    assert from_log.avg('psnr') == pytest.approx(from_json.avg('psnr'), abs=1e-3)
    assert from_log.avg('ssim') == pytest.approx(from_json.avg('ssim'), abs=1e-4)
    table = vis.quality_table([from_json])['json']
    metrics = __import__('json').loads((ours / 'metrics.json').read_text())
    assert table['Total'] == pytest.approx((metrics['total']['avg_psnr'], metrics['total']['avg_ssim']), abs=1e-12)
    assert table['clipB'][0] == pytest.approx(metrics['videos']['clipB']['avg_psnr'], abs=1e-12)


def test_our_times_are_charted_as_the_originals(ours):
    """pre + forward + post = total per frame, with post holding the scoring and writing, as in
    the original's log: the time charts put like next to like."""
    metrics = json.loads((ours / 'metrics.json').read_text())
    run = vis.load_run(str(ours))
    for video, summary in metrics['videos'].items():
        for record, frame in zip(summary['frames'], run.videos[video], strict=True):
            assert frame.times == {key: record[key] for key in vis.TIME_KEYS}
            assert record['post_time'] >= record['eval_time'] + record['write_time'] > 0
            assert record['total_time'] == pytest.approx(
                record['pre_time'] + record['forward_time'] + record['post_time'], abs=1e-9)
    table = vis.time_table([run])[run.label]
    assert table['post_time'] == pytest.approx(metrics['total']['avg_post_time'], abs=1e-12)


def test_runs_without_ground_truth_get_the_time_chart_only(tmp_path):
    log = tmp_path / 'real' / 'inference_log.txt'
    log.parent.mkdir()
    log.write_text('> walk-00000002 pre_time:0.01s, forward_time:0.5s, post_time:0.002s, total_time:0.512s\n')
    assert vis.main([str(log.parent), '--output_dir', str(tmp_path / 'c')]) == 0
    assert os.listdir(tmp_path / 'c') == ['time_breakdown.png']


@pytest.mark.parametrize('content,message', [
    (None, 'does not exist'),
    ('hello\n', 'no per-frame results'),
    ('{"videos": 3}', 'not a metrics.json'),
])
def test_bad_input(tmp_path, capsys, content, message):
    path = tmp_path / ('run.json' if content and content.startswith('{') else 'run.txt')
    if content is not None:
        path.write_text(content)
    assert vis.main([str(path), '--output_dir', str(tmp_path / 'charts')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('sbvsr-visualize: ') and message in err[0]
    assert not (tmp_path / 'charts').exists()


def test_labels_must_match_runs(tmp_path, capsys):
    assert vis.main(['a', 'b', '--labels', 'x']) == 1
    assert '--labels names 1 runs, but 2 were given' in capsys.readouterr().err
