"""Convert a PyTorch Self-Blind-VSR or PWC-Net checkpoint into the `.pkl` the Jittor model loads.

    python convert_pytorch_to_jittor.py --pytorch_model X.pt --jittor_model Y.pkl

Reads both torch formats without torch (see utils/checkpoint.py), infers the model
configuration from the tensor shapes, checks every tensor against the Jittor model
built with it, and writes a plain pickled dict {key: float32 ndarray} atomically.
"""
import argparse
import os
import sys
import tempfile

from jittor_self_blind_vsr.model import foreign_sentence, load_checked
from jittor_self_blind_vsr.model.specification import (
    MODEL_PARTS, PUBLISHED_CONFIG, config_from_state_dict)
from jittor_self_blind_vsr.runtime import current_device, import_jittor, show_jittor_log
from jittor_self_blind_vsr.utils import interrupt
from jittor_self_blind_vsr.utils.checkpoint import (
    FLOW_PREFIX, CheckpointError, is_flow_only, read_checkpoint, save_state_dict_file, state_dict_from)
from jittor_self_blind_vsr.utils.cli import VERBOSE_HELP, run_command


def _format_config(config):
    return ', '.join(f'{k}={v}' for k, v in config.items())


def _model_builder(flow_only):
    """config -> the Jittor network whose state dict keys are those `state_dict_from` gives."""
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
    config = dict(PUBLISHED_CONFIG) if flow_only else config_from_state_dict(state, path)
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
    parser.add_argument('--verbose', action='store_true', help=VERBOSE_HELP)
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
    if args.verbose:
        show_jittor_log()
    return run_command('sbvsr-convert', lambda: convert(args), kept=lambda: _kept(args.jittor_model),
                       write_target=args.jittor_model)


if __name__ == '__main__':
    sys.exit(main())
