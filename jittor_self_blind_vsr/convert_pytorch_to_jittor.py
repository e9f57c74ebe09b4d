"""Convert a PyTorch Self-Blind-VSR or PWC-Net checkpoint into the `.pkl` the Jittor model loads.

    python convert_pytorch_to_jittor.py --pytorch_model X.pt --jittor_model Y.pkl

Reads both torch formats without torch (see utils/checkpoint.py), infers the model
configuration from the tensor shapes, checks every tensor against the Jittor model
built with it, and writes a plain pickled dict {key: float32 ndarray} atomically.
"""
import argparse
import math
import os
import sys
import tempfile

from jittor_self_blind_vsr.model import load_checked
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.checkpoint import (
    FLOW_PREFIX, CheckpointError, foreign_sentence, is_flow_only, read_checkpoint, save_state_dict_file,
    state_dict_from)
from jittor_self_blind_vsr.utils.cli import run_command

# The published model; used where shapes cannot tell (and to name the keys of a foreign file).
PUBLISHED_CONFIG = dict(n_colors=3, n_sequence=5, n_feat=128, extra_RBS=3, recons_RBS=20,
                        kernel_size=3, scale=4, ksize=13)
# PWC_Recons's parts: a file holding none of them is another network's.
MODEL_PARTS = ('in_conv', 'extra_feat', 'fusion_conv', 'recons_net', 'out_conv', 'upsample_layers', 'flow_net',
               'kernel_net')


def _count_blocks(state, prefix):
    count = 0
    while f'{prefix}.{count}.conv1.weight' in state:
        count += 1
    return count


def _count_upsample_convs(state):
    # upsample_layers alternates conv and PixelShuffle(2): convs sit at even indices
    count = 0
    while f'upsample_layers.{2 * count}.weight' in state:
        count += 1
    return count


def _shape(state, key, ndim, path):
    """The shape of state[key] as ints (None when absent); CheckpointError unless it has `ndim` axes."""
    if key not in state:
        return None
    shape = tuple(int(n) for n in state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f'{path} holds {key} of shape {_format_shape(shape)}, where the model has a '
                              f'{ndim}-D tensor')
    return shape


def _format_shape(shape):
    return 'x'.join(map(str, shape)) or 'scalar'


def infer_config(state, path='the checkpoint'):
    """PWC_Recons arguments that the shapes of a full-model state dict determine.

    Raises CheckpointError, in one sentence, when a shape read here is one the
    architecture cannot have (the other keys are checked against the model built).
    """
    first = _shape(state, 'in_conv.0.weight', 4, path)
    if first is None:
        raise CheckpointError(f'{path} lacks in_conv.0.weight, from which the model\'s width (n_feat) and '
                              f'colour channels are read')
    config = dict(PUBLISHED_CONFIG)
    config['n_feat'], config['n_colors'] = first[:2]
    if min(first[:2]) < 1:
        raise CheckpointError(f'{path} holds an in_conv.0.weight of shape {_format_shape(first)}: the model '
                              f'needs at least one feature and one colour channel')
    fusion = _shape(state, 'fusion_conv.0.weight', 4, path)
    if fusion is not None:
        if fusion[1] % config['n_feat'] or fusion[1] == 0:
            raise CheckpointError(f'{path} holds a fusion_conv.0.weight taking {fusion[1]} channels, which is not '
                                  f'n_sequence times n_feat={config["n_feat"]}')
        config['n_sequence'] = fusion[1] // config['n_feat']
    config['extra_RBS'] = _count_blocks(state, 'extra_feat')
    config['recons_RBS'] = _count_blocks(state, 'recons_net')
    block = 'extra_feat.0.conv1.weight' if config['extra_RBS'] else 'recons_net.0.conv1.weight'
    kernel = _shape(state, block, 4, path)
    if kernel is not None:
        if kernel[2] != kernel[3] or kernel[2] % 2 == 0:
            raise CheckpointError(f'{path} gives its residual blocks {kernel[2]}x{kernel[3]} kernels ({block}), '
                                  f'but they must be square with an odd size')
        config['kernel_size'] = kernel[2]
    config['scale'] = 2 ** _count_upsample_convs(state)
    fc = _shape(state, 'kernel_net.fc_net.0.weight', 2, path)
    if fc is not None:
        ksize = math.isqrt(fc[1])
        if ksize ** 2 != fc[1] or ksize % 2 == 0:
            raise CheckpointError(f'{path} holds a kernel_net.fc_net.0.weight taking {fc[1]} inputs, but the '
                                  f'estimated blur kernel is ksize x ksize with an odd ksize')
        config['ksize'] = ksize
    return config


def _format_config(config):
    return ', '.join(f'{k}={v}' for k, v in config.items())


def _model_builder(flow_only):
    """config -> the Jittor network whose state dict keys are those `state_dict_from` gives."""
    from jittor_self_blind_vsr.runtime import current_device, import_jittor
    import_jittor(current_device() or 'cpu')  # checking shapes needs no GPU
    interrupt.install()
    if flow_only:
        from jittor_self_blind_vsr.model.flow_pwc import Flow_PWC
        return lambda config: Flow_PWC(pretrain_fn='.').moduleNetwork
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    return lambda config: PWC_Recons(flow_pretrain_fn='.', **config)


def check_against_model(path, state, flow_only):
    """Load `state` strictly into the Jittor model (PWC-Net alone for a flow-only file).

    Returns the configuration inferred from the shapes; raises CheckpointError naming
    the first keys or shapes that do not fit.
    """
    if not flow_only and not any(k.split('.', 1)[0] in MODEL_PARTS for k in state):
        raise CheckpointError(foreign_sentence(path, list(state)))
    config = dict(PUBLISHED_CONFIG) if flow_only else infer_config(state, path)
    build = _model_builder(flow_only)
    try:
        network = build(config)
    except Exception as exc:  # any shapes can come from a damaged or foreign file
        raise CheckpointError(f'{path} does not fit the model: its shapes imply a configuration the model '
                              f'cannot be built with ({_format_config(config)}: {exc})') from None
    load_checked(network, state, path)
    return config


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Convert a PyTorch Self-Blind-VSR or PWC-Net checkpoint (.pt, either torch format) '
                    'into a Jittor .pkl (a pickled dict of float32 numpy arrays). torch is not needed.')
    parser.add_argument('--pytorch_model', required=True, help='the PyTorch checkpoint to read')
    parser.add_argument('--jittor_model', required=True, help='the .pkl file to write')
    return parser.parse_args(argv)


def _check_output(args):
    """Refuse an output that cannot be written before the (long) read of the model."""
    folder = os.path.dirname(os.path.abspath(args.jittor_model))
    if not os.path.isdir(folder):
        raise CheckpointError(f'cannot write {args.jittor_model}: the folder {folder} does not exist')
    if os.path.isdir(args.jittor_model):
        raise CheckpointError(f'cannot write {args.jittor_model}: it is a folder')
    try:  # a nameless file: nothing is left behind, whatever happens next
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise CheckpointError(f'cannot write {args.jittor_model}: the folder {folder} is not writable '
                              f'({exc.strerror})') from None
    if os.path.exists(args.pytorch_model) and os.path.exists(args.jittor_model) \
            and os.path.samefile(args.pytorch_model, args.jittor_model):
        raise CheckpointError('--jittor_model must name another file than --pytorch_model')


def convert(args):
    _check_output(args)
    checkpoint = read_checkpoint(args.pytorch_model)
    state = state_dict_from(checkpoint.content, args.pytorch_model)
    flow_only = is_flow_only(state)
    config = check_against_model(args.pytorch_model, state, flow_only)
    if flow_only:  # stored as inside the full model, so one .pkl format serves both
        state = {FLOW_PREFIX + k: v for k, v in state.items()}
    save_state_dict_file(state, args.jittor_model)
    values = sum(int(v.size) for v in state.values())
    kind = 'PWC-Net optical-flow weights' if flow_only else 'Self-Blind-VSR weights'
    print(f'Read {args.pytorch_model}: {checkpoint.format}')
    print(f'{kind}: {len(state)} tensors, {values:,} values, every one checked against the Jittor model')
    if flow_only:
        print(f'Keys written under {FLOW_PREFIX}')
    else:
        print(f'Inferred configuration: {_format_config(config)}')
    print(f'Wrote {args.jittor_model}')


def _kept(path):
    return f'{path} is unchanged' if os.path.lexists(path) else f'{path} was not written'


def main(argv=None):
    args = _parse_args(argv)
    os.environ.setdefault('log_silent', '1')  # Jittor's compile chatter would bury the report
    return run_command('sbvsr-convert', lambda: convert(args), kept=lambda: _kept(args.jittor_model),
                       write_target=args.jittor_model)


if __name__ == '__main__':
    sys.exit(main())
