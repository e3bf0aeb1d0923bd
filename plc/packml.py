"""PackML (ISA-TR88.00.02) state model: which command is valid in which state, and where acting
states go when they complete. Pure tables, so the line model, the tests and the Structured Text
program in `plc/codesys/` can all be checked against one definition."""

from __future__ import annotations

from .tagmap import PackMLCommand as Cmd
from .tagmap import PackMLState as S

#: Acting states (they complete by themselves after their configured duration) -> next state.
STATE_COMPLETE: dict[int, int] = {
    S.Clearing: S.Stopped,
    S.Starting: S.Execute,
    S.Stopping: S.Stopped,
    S.Aborting: S.Aborted,
    S.Holding: S.Held,
    S.Unholding: S.Execute,
    S.Suspending: S.Suspended,
    S.Unsuspending: S.Execute,
    S.Resetting: S.Idle,
    S.Completing: S.Complete,
}

#: States a Stop command is accepted in (everything except Stopped/Stopping/Aborting/Aborted/Clearing).
_STOPPABLE = frozenset(
    {
        S.Idle,
        S.Starting,
        S.Execute,
        S.Completing,
        S.Complete,
        S.Resetting,
        S.Holding,
        S.Held,
        S.Unholding,
        S.Suspending,
        S.Suspended,
        S.Unsuspending,
    }
)
_ABORTABLE = frozenset(s for s in S if s not in (S.Aborting, S.Aborted))

#: (state, command) -> target state. Anything not listed is an illegal command in that state.
COMMAND_TRANSITIONS: dict[tuple[int, int], int] = {
    (S.Stopped, Cmd.Reset): S.Resetting,
    (S.Complete, Cmd.Reset): S.Resetting,
    (S.Idle, Cmd.Start): S.Starting,
    (S.Execute, Cmd.Hold): S.Holding,
    (S.Held, Cmd.Unhold): S.Unholding,
    (S.Execute, Cmd.Suspend): S.Suspending,
    (S.Suspended, Cmd.Unsuspend): S.Unsuspending,
    (S.Aborted, Cmd.Clear): S.Clearing,
    **{(s, Cmd.Stop): S.Stopping for s in _STOPPABLE},
    **{(s, Cmd.Abort): S.Aborting for s in _ABORTABLE},
}

#: Default time each acting state takes, simulated seconds.
DEFAULT_ACTING_DURATIONS_S: dict[str, float] = {
    "Clearing": 3.0,
    "Starting": 5.0,
    "Stopping": 3.0,
    "Aborting": 1.0,
    "Holding": 2.0,
    "Unholding": 2.0,
    "Suspending": 1.0,
    "Unsuspending": 1.0,
    "Resetting": 4.0,
    "Completing": 2.0,
}


def next_state(state: int, command: int) -> int | None:
    """Target state of `command` in `state`, or None when the command is illegal there."""
    return COMMAND_TRANSITIONS.get((state, command))
