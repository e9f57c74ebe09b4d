"""Flow_DIS: OpenCV's DIS optical flow behind Flow_PWC's interface, for models that use a
classical flow instead of PWC-Net (`flow='dis'` in PWC_Recons).

PWC-Net's published initialisation cannot be had offline, and a PWC-Net trained from random
weights on this project's CPU budget did not learn (docs/demo.md); a model trained with
Flow_PWC left at random weights aligns its neighbour frames with noise. DIS (Kroeger et al.,
2016) needs no weights and runs in milliseconds on LR frames. It has no parameters and passes
no gradient: the flow is a constant of the reconstruction, as PWC-Net's is at the published
flow learning rate of 1e-6.
"""
import cv2
import jittor as jt
import numpy as np

from jittor_self_blind_vsr.model.flow_pwc import FlowFeatures, FlowNet

# DIS refuses frames with both sides under 12 pixels; smaller ones are enlarged to this size
# and their flow scaled back (training's blurred-down patches can be that small).
MIN_SIDE = 16


def grey_uint8(frames):
    """(B, 3, H, W) float frames in [0, 1] -> (B, H, W) uint8 luminance-like mean, DIS's input."""
    return np.clip(np.rint(frames.mean(axis=1) * 255.0), 0, 255).astype(np.uint8)


def dis_flow(first, second, preset=cv2.DISOPTICAL_FLOW_PRESET_MEDIUM):
    """(H, W, 2) float32 flow from uint8 frame `first` to `second`: first(x) ~ second(x + flow)."""
    height, width = first.shape
    grow = max(1.0, MIN_SIDE / min(height, width))
    if grow > 1:
        size = (int(round(width * grow)), int(round(height * grow)))
        first = cv2.resize(first, size, interpolation=cv2.INTER_LINEAR)
        second = cv2.resize(second, size, interpolation=cv2.INTER_LINEAR)
    flow = cv2.DISOpticalFlow_create(preset).calc(first, second, None)
    if grow > 1:
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= width / first.shape[1]
        flow[..., 1] *= height / first.shape[0]
    return flow


class Flow_DIS(FlowNet):
    """Flow_PWC's interface (FlowNet) on DIS flow.

    The 'pyramid' of a frame is one level, its grey image as a Var, so the batched and
    tiled paths that slice and concatenate PWC-Net pyramids handle it unchanged."""

    def __init__(self, align_corners=True):
        super().__init__()
        self.align_corners = align_corners

    def features(self, frame):
        _, _, h, w = frame.shape
        # kept as float32: Jittor 1.3.11's concat turns uint8 Vars into int8
        return FlowFeatures([jt.array(grey_uint8(frame.detach().numpy()).astype(np.float32))], (h, w))

    def flow_from_features(self, first, second):
        """Flow (B, 2, H, W), in pixels, from the frames of `first` to those of `second`."""
        a, b = (features.pyramid[0].numpy().astype(np.uint8) for features in (first, second))
        flows = np.stack([dis_flow(x, y).transpose(2, 0, 1) for x, y in zip(a, b)])
        return jt.array(np.ascontiguousarray(flows, dtype=np.float32))
