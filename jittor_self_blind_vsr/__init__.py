"""Jittor implementation of Self-Supervised Deep Blind Video Super-Resolution (Bai & Pan)."""
__version__ = '0.1.0'
