"""What callers use of a reward held in its jail: the ``ConfinedReward`` Protocol, and ``Closing``,
which closes whatever holds a jailed process when its holder goes.

``rewardgen.sandbox.jail.Jail`` is the one implementation; the training and debug workers, and the
trainers' books, are written against this Protocol, so what they need of it is declared here rather
than probed with ``hasattr``. A reward that is not jailed (the env's own reward, or the candidate
loaded in-process for overhead measurements) is a plain callable: there is nothing to verify, close
or count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    import torch

    from rewardgen.contract.state import State


@runtime_checkable
class ConfinedReward(Protocol):
    """A reward running in a jail: called with a State batch, it answers ``(total, components)``.

    ``submit``/``collect`` split a call (the trainer steps the simulator meanwhile); ``verify`` raises
    ``JailError`` when the reward tried something refused and notes in ``guard_off`` whether the jail
    said its audit hook was switched off; ``refused`` counts the system calls its filter refused,
    outside the jail; ``close`` stops it. ``calls``, ``capacity`` and ``call_deadline`` describe it."""

    guard_off: bool

    def __call__(self, state: State) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def submit(self, state: State) -> None: ...

    def collect(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def verify(self) -> None: ...

    def refused(self) -> tuple[int, dict[str, int]]: ...

    def close(self) -> None: ...

    @property
    def calls(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    def call_deadline(self, n: int) -> float: ...


class Closing:
    """A holder of a jailed process (``Jail``, the exported reward's ``JailedReward``): its ``close``
    runs on leaving a ``with`` block and, failing that, when the holder is collected, so no jail
    outlives what held it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
