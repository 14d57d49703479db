"""lightning-dfd: a PyTorch Lightning framework for deepfake detection and face anti-spoofing research.

Importing the package switches off albumentations' import-time update check (a request to PyPI on every command,
documented switch ``NO_ALBUMENTATIONS_UPDATE``) before anything imports albumentations: nothing here contacts the
network unless asked to (``python -m lightning_dfd weights fetch``, W&B online with a key).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
