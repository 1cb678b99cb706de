"""ditto_core: Ditto (arXiv 2411.19509) talking-head synthesis in plain PyTorch.

Loads the official released checkpoints unchanged. Never imports ComfyUI.
"""

__version__ = "0.1.0"
