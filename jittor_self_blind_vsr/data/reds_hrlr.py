from jittor_self_blind_vsr.data.videodata_hrlr import VIDEODATA_HRLR


class REDS_HRLR(VIDEODATA_HRLR):
    """A set written by script_gene_dataset_blurdown.py (REDS4_BlurDown_*): HR/, LR_blurdown_x4/, kernel/."""

    def __init__(self, args, name='REDS_HRLR', train=True):
        super().__init__(args, name=name, train=train)
