"""The model side of inference: load and check a model file, compile it for each frame size,
and restore a clip window after window, computing each frame's features only once.

Imports Jittor: an entry point calls `runtime.import_jittor(device)` before importing this.
"""
import time
from dataclasses import dataclass
from typing import Optional

import jittor as jt
import numpy as np

from jittor_self_blind_vsr.infer import InferenceError
from jittor_self_blind_vsr.infer.sources import frame_digest, model_input, window_at, window_count, window_fingerprint
from jittor_self_blind_vsr.infer.tiling import ramp, tile_shape, tile_starts
from jittor_self_blind_vsr.model import load_checked
from jittor_self_blind_vsr.model.pwc_recons import FrameFeatures, PWC_Recons
from jittor_self_blind_vsr.model.specification import config_from_state_dict
from jittor_self_blind_vsr.runtime import current_device
from jittor_self_blind_vsr.utils.checkpoint import load_state_dict_file
from jittor_self_blind_vsr.utils.resample import grid_offset, shift


def read_model_file(path):
    """(state dict, PWC_Recons configuration its tensor shapes imply) of a .pkl or .pt file."""
    state = load_state_dict_file(path)
    if 'in_conv.0.weight' not in state:
        raise InferenceError(f'{path} holds no Self-Blind-VSR model (it has no in_conv.0.weight)')
    return state, config_from_state_dict(state, path)


def load_model(path, scale, n_seq, align_corners):
    """(network in eval mode on the current device, its configuration) from a model file that
    fits `scale` and `n_seq` frames of RGB."""
    state, config = read_model_file(path)
    if config['scale'] != scale:
        raise InferenceError(f'the model upsamples by {config["scale"]}, but --scale is {scale}')
    if config['n_sequence'] != n_seq or config['n_colors'] != 3:
        raise InferenceError(f'the model takes {config["n_sequence"]} frames of {config["n_colors"]} channels, '
                             f'but --n_seq is {n_seq} on RGB frames')
    try:
        net = PWC_Recons(**config, device=current_device(), align_corners=align_corners)
    except Exception as error:  # the shapes of a damaged or foreign file can imply any configuration
        raise InferenceError(f'{path} does not fit the model: its shapes imply a configuration '
                             f'the model cannot be built with ({error})') from None
    load_checked(net, state, path)
    net.eval()
    return net, config


def _vars(obj):
    if isinstance(obj, jt.Var):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [v for item in obj for v in _vars(item)]
    return []


class WindowRestorer:
    """Restores consecutive windows, computing each frame's features only once.

    `net.frame_features` (in_conv + extra_feat, PWC-Net's feature pyramid) of a frame is
    kept while a later window still contains that frame, so a clip costs one feature pass
    per frame instead of n_seq.
    """

    def __init__(self, net):
        self.net = net
        self.cache = {}

    def restore(self, indices, frames):
        """The (1,3,H,W) output Var of one window, computed; `frames`: {index: (1,3,h,w) float32
        array} holding at least the indices whose features are not cached."""
        for index in indices:
            if index not in self.cache:
                var = jt.array(frames[index])
                features = self.net.frame_features(var)
                # Materialised now, every window runs the same graph (and so the same
                # compiled kernels) whichever of its frames are new.
                jt.sync(_vars(features))
                self.cache[index] = (var, features)
        window = [self.cache[i] for i in indices]
        recons = self.net.recons_from_features([v for v, _ in window], [f for _, f in window])
        recons.sync()
        return recons

    def forget_all_but(self, keep):
        for index in [i for i in self.cache if i not in keep]:
            del self.cache[index]


class TiledRestorer:
    """WindowRestorer's contract on a frame cut into overlapping tiles. PWC-Net sees whole frames:
    each frame's pyramid is computed once and each window's flows on the whole frame; the
    reconstruction trunk sees one tile at a time (its features computed once per frame and tile),
    warped with the flows cropped to the tile; the tiles' outputs are blended with linear ramps
    over the overlaps."""

    def __init__(self, net, size, tile, overlap):
        (height, width), (tile_h, tile_w) = size, tile_shape(size, tile, overlap)
        scale = 1 if net.HR_in else net.scale
        self.net, self.scale, self.size = net, scale, size
        self.pyramids = {}
        tiles = []
        total = np.zeros((height * scale, width * scale))
        for top in tile_starts(height, tile_h, overlap):
            for left in tile_starts(width, tile_w, overlap):
                weight = np.outer(ramp(top, tile_h, height, overlap, scale), ramp(left, tile_w, width, overlap, scale))
                box = (slice(top, top + tile_h), slice(left, left + tile_w))
                tiles.append((box, weight))
                total[self._hr(box)] += weight
        # each tile: (LR box, {frame index: (tile Var, FrameFeatures without pyramid)}, blend weight)
        self.tiles = [(box, {}, (weight / total[self._hr(box)]).astype(np.float32)) for box, weight in tiles]

    def _hr(self, box):
        return tuple(slice(axis.start * self.scale, axis.stop * self.scale) for axis in box)

    def restore(self, indices, frames):
        net = self.net
        for index in indices:
            if index not in self.pyramids:
                pyramid = net.flow_net.features(jt.array(frames[index]))
                jt.sync(_vars(pyramid))
                self.pyramids[index] = pyramid
        # Fetched and cropped in NumPy like the frames, so every tile's graph is the same whatever its position.
        flows = [None if flow is None else flow.numpy()
                 for flow in net.window_flows([self.pyramids[i] for i in indices])]
        height, width = self.size
        out = np.zeros((1, 3, height * self.scale, width * self.scale), np.float32)
        for box, cache, weight in self.tiles:
            crop = (slice(None), slice(None)) + box
            for index in indices:
                if index not in cache:
                    var = jt.array(np.ascontiguousarray(frames[index][crop]))
                    feat = net.trunk_features(var)
                    jt.sync(_vars(feat))
                    cache[index] = (var, FrameFeatures(feat, None))
            window = [cache[i] for i in indices]
            tile_flows = [None if flow is None else jt.array(np.ascontiguousarray(flow[crop])) for flow in flows]
            recons = net.recons_from_features([v for v, _ in window], [f for _, f in window], tile_flows)
            out[(slice(None), slice(None)) + self._hr(box)] += recons.numpy() * weight
        return jt.array(out)

    def forget_all_but(self, keep):
        for cache in [self.pyramids] + [cache for _, cache, _ in self.tiles]:
            for index in [i for i in cache if i not in keep]:
                del cache[index]


class GridShiftRestorer:
    """Another restorer's output moved by `offset` HR pixels right and down (--lr_grid centre).

    The models take LR pixel i to be HR pixel scale*i; footage sampled at pixel centres has it
    at scale*i + (scale-1)/2, so the output, computed on the models' grid, is moved there."""

    def __init__(self, inner, offset):
        self.inner, self.offset = inner, offset

    def restore(self, indices, frames):
        out = self.inner.restore(indices, frames).numpy()[0].transpose(1, 2, 0)
        return jt.array(np.ascontiguousarray(shift(out, self.offset).transpose(2, 0, 1)[None]))

    def forget_all_but(self, keep):
        self.inner.forget_all_but(keep)


def clip_restorer(net, size, tile, overlap, lr_grid='corner'):
    """The restorer of frames of `size` (LR h, w): tiled when `tile` is set and smaller than the frame;
    its output moved onto the input's sampling grid `lr_grid` (utils/resample.py)."""
    if tile_shape(size, tile, overlap) == tuple(size):
        restorer = WindowRestorer(net)
    else:
        restorer = TiledRestorer(net, size, tile, overlap)
    offset = grid_offset(lr_grid, 1 if net.HR_in else net.scale)
    return GridShiftRestorer(restorer, offset) if offset else restorer


def warm_up(net, size, tile, overlap, n_seq):
    """Compile every kernel of one restoration of frames of `size` (LR h, w) with this tiling;
    returns the seconds taken."""
    start = time.perf_counter()
    zeros = {i: np.zeros((1, 3) + tuple(size), np.float32) for i in range(n_seq)}
    clip_restorer(net, size, tile, overlap).restore(list(range(n_seq)), zeros).numpy()
    return time.perf_counter() - start


@dataclass
class RestoredFrame:
    name: str
    output: Optional[jt.Var]  # (1,3,H,W) as the network returned it, computed; None: kept from an earlier run
    gt: Optional[np.ndarray]  # uint8 HxWx3, when the clip has ground truth
    pre_time: float  # reading, cropping and normalising the frames this window adds
    forward_time: float  # the network, synchronised
    inputs: Optional[str] = None  # sources.window_fingerprint of the frames it was restored from


def restore_clip(restorer, clip, n_seq, border, size, scale, skip=0):
    """RestoredFrame of the centre of every window of `clip` (LR frames cropped to `size`), in order,
    read, restored and handed on one window at a time: the frames and features kept are those a
    later window still holds, whatever the clip's length. The first `skip` windows (restored by
    an interrupted run) are not computed: their RestoredFrame has no output."""
    count, centre = window_count(clip.lr.count, n_seq, border), n_seq // 2
    h, w = size
    lr = clip.lr.reader()
    gt = clip.gt.reader() if clip.gt is not None else None
    frames, digests = {}, {}
    try:
        for k in range(count):
            window = window_at(k, clip.lr.count, n_seq, border)
            index = window[centre]
            if k < skip:
                yield RestoredFrame(clip.lr.frame_name(index), None, None, 0.0, 0.0)
                continue
            start = time.perf_counter()
            for new in sorted(set(window) - frames.keys()):
                image = lr.read(new)
                digests[new] = frame_digest(image)
                frames[new] = model_input(image, size)
            target, target_digest = None, None
            if gt is not None:
                image = gt.read(index)
                target, target_digest = np.ascontiguousarray(image[:h * scale, :w * scale]), frame_digest(image)
            inputs = window_fingerprint([digests[i] for i in window], target_digest)
            pre = time.perf_counter()
            recons = restorer.restore(window, frames)
            forward = time.perf_counter()
            # a frame's windows lie within 2 * n_seq - 1 of each other
            keep = {i for later in range(k + 1, min(k + 2 * n_seq, count))
                    for i in window_at(later, clip.lr.count, n_seq, border)}
            restorer.forget_all_but(keep)
            for stale in [i for i in frames if i not in keep]:
                del frames[stale]
                del digests[stale]
            yield RestoredFrame(clip.lr.frame_name(index), recons, target, pre - start, forward - pre, inputs)
    finally:
        lr.close()
        if gt is not None:
            gt.close()
        restorer.forget_all_but(set())
