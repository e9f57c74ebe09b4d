"""Launcher from the repository root: python convert/convert_pytorch_to_jittor.py --pytorch_model X.pt --jittor_model Y.pkl"""
import sys

from jittor_self_blind_vsr.convert_pytorch_to_jittor import main

if __name__ == '__main__':
    sys.exit(main())
