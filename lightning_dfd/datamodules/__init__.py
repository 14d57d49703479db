"""LightningDataModules: one per dataset on a shared base (manifest -> datasets -> DataLoaders)."""

from lightning_dfd.datamodules.base import FaceForgeryDataModule
from lightning_dfd.datamodules.casia_surf import CasiaSurfDataModule
from lightning_dfd.datamodules.celebdf import CelebDFDataModule
from lightning_dfd.datamodules.deeperforensics import DeeperForensicsDataModule
from lightning_dfd.datamodules.dfd import DFDDataModule
from lightning_dfd.datamodules.dfdc import DFDCDataModule
from lightning_dfd.datamodules.face_folder import FaceFolderDataModule
from lightning_dfd.datamodules.ffpp import FFPPDataModule
from lightning_dfd.datamodules.samplers import VideoFrameSampler, VideoShardSampler
from lightning_dfd.datamodules.uadfv import UADFVDataModule
from lightning_dfd.datamodules.wilddeepfake import WildDeepfakeDataModule

__all__ = [
    "CasiaSurfDataModule",
    "CelebDFDataModule",
    "DFDCDataModule",
    "DFDDataModule",
    "DeeperForensicsDataModule",
    "FFPPDataModule",
    "FaceFolderDataModule",
    "FaceForgeryDataModule",
    "UADFVDataModule",
    "VideoFrameSampler",
    "VideoShardSampler",
    "WildDeepfakeDataModule",
]
