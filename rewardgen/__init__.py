"""rewardgen: writes, trains and selects reward functions for MuJoCo robots."""

__version__ = "0.1.0"

from rewardgen import mjlog as _mjlog  # noqa: E402

_mjlog.install()  # MuJoCo's warnings go through Python, not to the terminal or ./MUJOCO_LOG.TXT
