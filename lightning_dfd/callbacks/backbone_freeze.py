"""Freeze a method's backbone for the first epochs, then train it (LAA-Net, Sec. 4.1: the first 6 epochs).

The state is a function of ``trainer.current_epoch`` alone (checked at every epoch start), so a run resumed from a
checkpoint freezes or unfreezes correctly without stored state. Parameters stay in the optimizer throughout:
frozen ones get no gradient, which Adam/SAM skip (no update, no weight decay, moments untouched).

Under DDP the model is wrapped before the first epoch with every parameter trainable; the reducer then expects a
gradient for each of them, so while the backbone is frozen DDP must look for unused parameters
(``--trainer.strategy ddp_find_unused_parameters_true``). The callback checks this and says so.
"""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn


def resolve_attribute(root: nn.Module, path: str) -> nn.Module:
    """``root.a.b`` for ``path == "a.b"``, with an error naming the attribute that is missing."""
    module = root
    for part in path.split("."):
        if not hasattr(module, part):
            raise AttributeError(f"{type(root).__name__} has no attribute {path!r} (missing {part!r}); set "
                                 f"BackboneFreeze(backbone_attribute=...) to the dotted path of the backbone")
        module = getattr(module, part)
    if not isinstance(module, nn.Module):
        raise TypeError(f"{type(root).__name__}.{path} is a {type(module).__name__}, not an nn.Module")
    return module


class BackboneFreeze(Callback):
    """Backbone frozen (``requires_grad=False``) while ``current_epoch < freeze_epochs``.

    Args:
        freeze_epochs: number of epochs with a frozen backbone (6 for LAA-Net); 0 disables the callback.
        backbone_attribute: dotted path from the LightningModule to the backbone (``model.backbone``).
        train_bn: keep the frozen backbone's BatchNorm layers in train mode (running statistics keep adapting);
            if false they are put in eval mode while frozen.
    """

    def __init__(self, freeze_epochs: int = 6, backbone_attribute: str = "model.backbone",
                 train_bn: bool = True) -> None:
        if freeze_epochs < 0:
            raise ValueError(f"freeze_epochs must be >= 0, got {freeze_epochs}")
        self.freeze_epochs = freeze_epochs
        self.backbone_attribute = backbone_attribute
        self.train_bn = train_bn

    def backbone(self, pl_module: LightningModule) -> nn.Module:
        return resolve_attribute(pl_module, self.backbone_attribute)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.backbone(pl_module)  # fail early on a wrong path

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        backbone = self.backbone(pl_module)
        frozen = trainer.current_epoch < self.freeze_epochs
        if frozen:
            _check_ddp_allows_freezing(trainer)
        for parameter in backbone.parameters():
            parameter.requires_grad_(not frozen)
        if frozen and not self.train_bn:
            for layer in backbone.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()
        pl_module.log("backbone_frozen", float(frozen), on_step=False, on_epoch=True, sync_dist=False)


def _check_ddp_allows_freezing(trainer: Trainer) -> None:
    from torch.nn.parallel import DistributedDataParallel

    wrapped = getattr(trainer.strategy, "model", None)
    if isinstance(wrapped, DistributedDataParallel) and not wrapped.find_unused_parameters:
        raise RuntimeError(
            "BackboneFreeze under DDP needs find_unused_parameters=True (frozen parameters get no gradient): "
            "use --trainer.strategy ddp_find_unused_parameters_true (or DDPStrategy(find_unused_parameters=True)),"
            " or set freeze_epochs: 0")
