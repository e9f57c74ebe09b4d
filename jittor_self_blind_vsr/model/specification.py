"""What PWC_Recons is: the published configuration, the configuration a state dict's shapes
determine, and the network the command-line options describe.

Nothing here imports Jittor at import time: the converter and sbvsr-infer work out a
configuration before the runtime is set up, and option/ reads its defaults from here.
"""
import math

from jittor_self_blind_vsr.utils.checkpoint import CheckpointError

# The published model (the original's templates and released weights); option/ takes its
# defaults from it, and config_from_state_dict starts from it where shapes cannot tell.
PUBLISHED_CONFIG = dict(n_colors=3, n_sequence=5, n_feat=128, extra_RBS=3, recons_RBS=20,
                        kernel_size=3, scale=4, ksize=13, flow='pwc')
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


def _format_shape(shape):
    return 'x'.join(map(str, shape)) or 'scalar'


def _shape(state, key, ndim, path):
    """The shape of state[key] as ints (None when absent); CheckpointError unless it has `ndim` axes."""
    if key not in state:
        return None
    shape = tuple(int(n) for n in state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f'{path} holds {key} of shape {_format_shape(shape)}, where the model has a '
                              f'{ndim}-D tensor')
    return shape


def flow_of_state(state):
    """'pwc' or 'dis' for a full-model state dict (a model with a classical flow, flow_dis.py, has no
    flow weights); None for a state holding no reconstruction trunk, whose flow cannot be told."""
    if any(key.startswith('flow_net.') for key in state):
        return 'pwc'
    return 'dis' if 'in_conv.0.weight' in state else None


def config_from_state_dict(state, path='the checkpoint'):
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
    config['flow'] = flow_of_state(state)
    fc = _shape(state, 'kernel_net.fc_net.0.weight', 2, path)
    if fc is not None:
        ksize = math.isqrt(fc[1])
        if ksize ** 2 != fc[1] or ksize % 2 == 0:
            raise CheckpointError(f'{path} holds a kernel_net.fc_net.0.weight taking {fc[1]} inputs, but the '
                                  f'estimated blur kernel is ksize x ksize with an odd ksize')
        config['ksize'] = ksize
    return config


def model_from_options(args, flow_pretrain_fn='.', device=None):
    """PWC_Recons as sbvsr-train's options (option/) describe it; PWC-Net starts from the weights
    in `flow_pretrain_fn` ('.': none). Needs the Jittor runtime set up (runtime.import_jittor)."""
    from jittor_self_blind_vsr.model.pwc_recons import PWC_Recons
    return PWC_Recons(n_colors=args.n_colors, n_sequence=args.n_sequence, extra_RBS=args.extra_RBS,
                      recons_RBS=args.recons_RBS, n_feat=args.n_feat, scale=args.scale, ksize=args.ksize,
                      HR_in=args.HR_in, flow_pretrain_fn=flow_pretrain_fn, device=device,
                      align_corners=args.align_corners, flow=args.flow)
