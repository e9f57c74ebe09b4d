"""Self-supervised training of PWC_Recons, and its evaluation on the test set.

Training sees only LR clips (see loss/__init__.py for the objective). Evaluation
reports, as the original trainer: Cycle-PSNR (LR centre vs blur-down of the SR
result), Down-PSNR (LR centre vs the reconstruction of the blurred-down clip) and
PSNR of the SR result against HR, all on float images in [0, 1] with 4 border
pixels cropped and no rounding.
"""
from collections import OrderedDict

import jittor as jt
import numpy as np
from tqdm import tqdm

from jittor_self_blind_vsr.loss.kernel_loss import KernelPriorLoss
from jittor_self_blind_vsr.runtime import seed_everything
from jittor_self_blind_vsr.trainer.trainer import Trainer
from jittor_self_blind_vsr.utils.image_io import to_uint8_image
from jittor_self_blind_vsr.utils.metrics import calc_psnr_float

# The original's parameter groups; the last one (PWC-Net) gets its own small rate.
RECONS_GROUPS = ('in_conv', 'extra_feat', 'fusion_conv', 'recons_net', 'upsample_layers', 'out_conv',
                 'kernel_net')
FLOW_GROUP = 'flow_net'
PSNR_PLOTS = (('psnr', 'psnr.png', 'PSNR'), ('cycle_psnr', 'cycle_psnr.png', 'Cycle PSNR'),
              ('down_psnr', 'downdata_psnr.png', 'DownData PSNR'))
SHAVE = 4
# Weight of the kernel prior during --kernel_prior_batches: strong enough to hold the estimate near
# the prior against the cycle loss's pull towards a one-pixel kernel.
KERNEL_PRIOR_WEIGHT = 10.0
# Saved image name postfix -> model output, in the original's order.
IMAGE_OUTPUTS = (('lr', 'input'), ('sr', 'recons'), ('lr_cycle', 'input_cycle'), ('lr_down', 'input_down'),
                 ('sr_down', 'recons_down'))


def to_uint8(chw):
    """(C, H, W) float in [0, 1] -> HxWx3 uint8 (a grey kernel map repeated to three channels)."""
    image = to_uint8_image(chw)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def kernel_image(kernel):
    """A (ks, ks) kernel stretched to [0, 255] for viewing."""
    low, high = kernel.min(), kernel.max()
    return to_uint8(((kernel - low) / max(high - low, 1e-12))[None])


def crop_kernel(padded):
    """The ground-truth kernel from the dataset's (ks_max, ks_max) -1-padded block."""
    size = int(np.sum(padded[0] != -1))
    return padded[:size, :size]


class EpochShuffle(jt.dataset.Sampler):
    """The loader's order in one epoch: a permutation of its clips drawn from `seed` alone.

    Set through Jittor's public sampler hook, not the private generator Jittor shuffles
    with (which a Jittor release may rename), so a resumed run keeps the order. The same
    on every MPI rank, which then takes its shard of each batch.
    """

    def __init__(self, dataset, seed):
        super().__init__(dataset)  # Jittor's convention: this makes it dataset.sampler
        self.seed = seed

    def __len__(self):
        return self.dataset.total_len  # samples (Jittor sets it before asking); len() counts batches

    def __iter__(self):
        return iter(np.random.default_rng(self.seed).permutation(len(self)).tolist())


class Trainer_Flow_Video(Trainer):
    def __init__(self, args, loader, model, loss, ckp):
        super().__init__(args, loader, model, loss, ckp)
        self.centre = args.n_sequence // 2
        # LR-only test sets (VIDEO_LR) have no HR: no PSNR, and model_best follows Cycle-PSNR.
        self.has_hr = getattr(self.loader_test, 'has_hr', True)
        self.best_key = 'psnr' if self.has_hr else 'cycle_psnr'
        self.kernel_prior = KernelPriorLoss(args.ksize, args.kernel_prior_sigma)

    def make_optimizer(self):
        groups = [{'params': getattr(self.model, name).parameters()} for name in RECONS_GROUPS]
        flow_params = getattr(self.model, FLOW_GROUP).parameters()
        if flow_params:  # a classical flow (--flow dis) has none
            groups.append({'params': flow_params, 'lr': self.args.flow_lr, 'base_lr': self.args.flow_lr})
        return super().make_optimizer(groups)

    def bar_disabled(self):
        """tqdm's `disable`: None draws bars only on a terminal (logs stay clean); off on ranks > 0."""
        return None if self.ckp.is_main else True

    def compute_gradients(self, x):
        """Forward and backward of one batch; gradients land in the optimiser. Returns the loss Vars."""
        output_dict, mid_loss = self.model({'x': x, 'mode': 'train'})
        values = self.loss(output_dict)
        # Adam's step count is kept in the training state: a resumed run stops the prior where an uninterrupted one would.
        if self.optimizer.n_step < self.args.kernel_prior_batches:
            values['total'] = values['total'] + KERNEL_PRIOR_WEIGHT * self.kernel_prior(output_dict['est_kernel'])
        if mid_loss is not None:
            values['total'] = values['total'] + self.args.mid_loss_weight * mid_loss
        self.optimizer.backward(values['total'])
        return values

    def train_step(self, x):
        values = self.compute_gradients(x)
        self.optimizer.step()
        return OrderedDict((name, float(value.item())) for name, value in values.items())

    def _start_epoch(self, epoch):
        # Every random stream is derived from (seed, epoch), so epoch N of a resumed run
        # draws the same crops, kernels and order as epoch N of an uninterrupted one.
        seed_everything(self.args.seed + epoch)
        EpochShuffle(self.loader_train, self.args.seed + epoch)
        lr = self.set_epoch_lr(epoch)
        self.ckp.write_log(f'[Epoch {epoch}]\tLearning rate: {lr:.2e}')

    def train(self, stop=None):
        """One epoch; `stop`, called after every batch, ends it early by returning True (sbvsr-adapt's budget)."""
        epoch = self.epoch + 1
        self._start_epoch(epoch)
        self.model.train()
        sums = OrderedDict((name, 0.) for name in self.loss.names())
        bar = tqdm(self.loader_train, ncols=100, disable=self.bar_disabled(), desc=f'Epoch {epoch}')
        n_batches = 0
        for batch in bar:
            values = self.train_step(batch[0])
            n_batches += 1
            for name, value in values.items():
                sums[name] += value
            means = ' '.join(f'{name} {total / n_batches:.4f}' for name, total in sums.items())
            bar.set_postfix_str(means)
            if n_batches % self.args.print_every == 0:
                self.ckp.write_log(f'[{n_batches}/{len(self.loader_train)}]\t{means}', echo=False)
            if stop is not None and stop():
                break
        bar.close()
        if n_batches == 0:
            raise RuntimeError('the training set gave no batch (fewer clips than --batch_size?)')
        for name, total in sums.items():
            self.log_value(f'loss_{name}', total / n_batches)
        self.epoch = epoch

    def evaluate_clip(self, x, gt, kernel, clip_name):
        output, _ = self.model({'x': x, 'mode': 'val'})
        arrays = {name: var.numpy() for name, var in output.items()}
        hr = gt.numpy()[:, self.centre]
        rgb_range = self.args.rgb_range
        scores = (calc_psnr_float(hr, arrays['recons'], rgb_range, SHAVE) if self.has_hr else float('nan'),
                  calc_psnr_float(arrays['input'], arrays['input_cycle'], rgb_range, SHAVE),
                  calc_psnr_float(arrays['input'], arrays['recons_down'], rgb_range, SHAVE))
        if self.args.save_images:
            images = OrderedDict(gt=to_uint8(hr[0])) if self.has_hr else OrderedDict()
            for postfix, key in IMAGE_OUTPUTS:
                images[postfix] = to_uint8(arrays[key][0])
            images['est_kernel'] = kernel_image(arrays['est_kernel'][0, 0])
            images['gt_kernel'] = kernel_image(crop_kernel(kernel.numpy()[0, self.centre, 0]))
            self.ckp.save_images(clip_name, images)
        return scores

    def _evaluate(self):
        self.model.eval()
        scores = []
        with jt.no_grad():
            for x, gt, kernel, filenames in tqdm(self.loader_test, ncols=80, disable=self.bar_disabled(),
                                                 desc='Evaluation'):
                scores.append(self.evaluate_clip(x, gt, kernel, filenames[self.centre][0]))
        if not scores:
            raise RuntimeError('the test set is empty')
        return np.mean(np.asarray(scores, np.float64), axis=0)

    def test(self):
        self.ckp.write_log('\nEvaluation:')
        # Every rank would shard a batch-1 test loader; rank 0 evaluates alone instead.
        result = jt.single_process_scope(rank=0)(self._evaluate)()
        if not self.ckp.is_main:
            return
        psnr, cycle_psnr, down_psnr = (float(v) for v in result)
        for name, value in zip(('psnr', 'cycle_psnr', 'down_psnr'), (psnr, cycle_psnr, down_psnr)):
            self.log_value(name, value)
        best = self.best_epoch(self.best_key)
        self.ckp.write_log(f'[{self.args.data_test}]\taverage Cycle-PSNR: {cycle_psnr:.3f} '
                           f'Down-PSNR: {down_psnr:.3f} PSNR: {psnr:.3f} '
                           f'(Best: {max(self.logs[self.best_key]):.3f} @epoch {best})')
        if self.args.test_only:
            return
        self.ckp.save_checkpoint(self.state(), self.epoch, is_best=best == self.epoch)
        self.plot_logs()

    def plot_logs(self):
        for name in self.loss.names():
            self.ckp.plot(f'loss_{name}.png', self.logs[f'loss_{name}'], f'{name} Loss', 'Loss')
        for key, filename, title in PSNR_PLOTS:
            self.ckp.plot(filename, self.logs[key], title, 'PSNR (dB)')
