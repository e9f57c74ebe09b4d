"""The library behind `sbvsr-infer` (inference.py), one module per responsibility:

* sources: finding the clips of an input or GT path and reading their frames;
* restorer: loading the model, warming it up and restoring window after window,
  each frame's features computed once (imports Jittor: import it after
  `runtime.import_jittor`), whole frames or overlapping tiles;
* tiling: where the tiles lie, their blend weights, the tile size a memory budget allows;
* results: the staged results folder, inference_log.txt, metrics.json/csv, and
  swapping a finished result in for an earlier one; the manifest of finished frames
  that keeps memory flat and lets --resume go on after an interruption;
* progress: frames per second and the time left, on a terminal or as log lines;
* batch: a folder of video files or a glob pattern, one run per video, and what became of each.
"""
from jittor_self_blind_vsr.utils.cli import UserError


class InferenceError(UserError):
    """Bad input or an unusable model: reported as one sentence, exit status 1."""
