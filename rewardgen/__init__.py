"""rewardgen: writes, trains and selects reward functions for MuJoCo robots."""

__version__ = "0.1.0"
