"""The networks' names and tasks, without torch: the command line lists them before any network is built."""

from __future__ import annotations

from ..errors import check_choice

#: name -> task, in the order :func:`model_names` lists them (the builders are in :mod:`.registry`).
MODEL_TASKS: dict[str, str] = {
    "msnet": "segmentation",
    "msnet-small": "segmentation",
    "bccnet": "classification",
    "densenet-1": "classification",
    "densenet-2": "classification",
    "densenet121": "classification",
}


def model_names(task: str | None = None) -> list[str]:
    """Names accepted by :func:`~bonescreen.nets.create_model`, optionally only those of one task.

    Raises
    ------
    BoneScreenError
        If ``task`` is neither ``segmentation`` nor ``classification``.
    """
    if task is not None:
        check_choice("task", task, ("segmentation", "classification"))
    return [n for n, t in MODEL_TASKS.items() if task is None or t == task]
