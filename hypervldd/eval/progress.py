"""The progress bar of an evaluation: epochs of every student, shared by worker threads."""

from __future__ import annotations

import threading

from tqdm.auto import tqdm

__all__ = ["EpochBar"]


class EpochBar:
    """One tqdm bar over ``students * epochs`` epochs (on stderr), safe to tick from threads.

    Args:
        students, epochs: the work of the evaluation.
        desc: the bar's label.
        enabled: ``False`` draws nothing (``--no-progress``).

    >>> bar = EpochBar(2, 3, enabled=False)
    >>> for _ in range(6):
    ...     bar.epoch_done()
    >>> bar.student_done(); bar.student_done(); bar.close()
    >>> bar.epochs_done, bar.students_done
    (6, 2)
    """

    def __init__(
        self, students: int, epochs: int, *, desc: str = "evaluate", enabled: bool = True
    ) -> None:
        self.students, self.epochs = int(students), int(epochs)
        self.epochs_done = self.students_done = 0
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            self._bar = tqdm(
                total=self.students * self.epochs,
                desc=f"{desc} ({self.students} student{'s' if self.students != 1 else ''})",
                unit="epoch",
                dynamic_ncols=True,
            )

    def epoch_done(self) -> None:
        """One epoch of one student finished."""
        with self._lock:
            self.epochs_done += 1
            if self._bar is not None:
                self._bar.update(1)

    def student_done(self) -> None:
        """One student trained and scored."""
        with self._lock:
            self.students_done += 1
            if self._bar is not None:
                self._bar.set_postfix_str(f"{self.students_done}/{self.students} students done")

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
