"""The training templates (`<name>.cfg`), shipped as package data: setup.py maps this
folder into the package as jittor_self_blind_vsr.templates."""
