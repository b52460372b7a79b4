"""The trusted side: a trained policy's fitness (``evaluator``), its best and worst episodes
(``trajectory``), its video (``video``) and the reward-hacking alarm (``hacking``). Nothing here can
import code that loads or runs a reward (``tests/test_architecture.py``)."""
