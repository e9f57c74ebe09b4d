"""Launcher from the repository root: python convert/convert_pytorch_to_jittor.py --pytorch_model X.pt --jittor_model Y.pkl"""
import os
import sys

# Make the package importable from a plain checkout, without installing it.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from jittor_self_blind_vsr.convert_pytorch_to_jittor import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
