"""DICOM SR: a TID 1500 Measurement Report of one screening, referencing the source series and the SEG.

One measurement group (TID 1411, volumetric ROI) per classified level, its ROI the level's segment of
``seg.dcm``, holding what result.json holds for it: trabecular HU (DCM 112181 Mean Attenuation
Coefficient, UCUM ``[hnsf'U]``), vBMD and its uncertainty (mg/cm3), the three body heights (DCM 121207
Height, mm, at the body's SCT Anterior / Central / Posterior, topographical modifiers of CID 2), the height
loss, the Genant grade and shape (and the grade on the other side of grade 2's bound when the slices cannot
tell them apart), BCC-Net's probabilities and class, the ACR category; one group (TID 1501) for the whole
scan: the overall trabecular HU, BCC-Net's probabilities and class, vBMD, ACR category and bone status; and the
Image Library (TID 1600) of the source images.
Standard codes where DICOM (PS3.16) or SNOMED CT have one; the others are BoneScreen's own, coding scheme
:data:`SCHEME` (a private designator, as PS3.16 8.2 allows), named in :data:`PRIVATE_CODES`. Numbers are
written as result.json rounds them, so a reader gets the same.
"""

from __future__ import annotations

import os

import numpy as np
import pydicom

from .. import __version__
from ..errors import BoneScreenError
from ..labels import CLASS_NAMES, level_id
from ..messages import status_confirmed
from .volume import CTVolume

SCHEME = "99BSCR"
#: BoneScreen's own codes: value -> meaning.
PRIVATE_CODES = {
    "VBMD": "Volumetric bone mineral density (hydroxyapatite)",
    "VBMDSD": "Uncertainty of volumetric bone mineral density (1 SD)",
    "PNORMAL": "Probability of normal bone mass (BCC-Net)",
    "PLOW": "Probability of low bone mass (BCC-Net)",
    "POSTEO": "Probability of osteoporosis (BCC-Net)",
    "BCCNET": "Bone condition by BCC-Net",
    "ACRQCT": "ACR QCT category of vBMD",
    "STATUS": "Bone status",
    "GENANT": "Genant semiquantitative grade",
    "GENANT0": "Genant grade 0 (normal)",
    "GENANT1": "Genant grade 1 (mild)",
    "GENANT2": "Genant grade 2 (moderate)",
    "GENANT3": "Genant grade 3 (severe)",
    "SHAPE": "Vertebral fracture shape",
    "HLOSS": "Vertebral body height loss",
    "GRADEDOUBT": "Genant grade the slice spacing cannot rule out",
    "WEDGE": "Wedge",
    "BICONCAVE": "Biconcave",
    "CRUSH": "Crush",
    "OVERALL": "Overall lumbar result",
    "FLAGGED": "Result flagged uncertain",
    "STATUSCONF": "Bone status confirmed",
    "NAMESCONF": "Level names confirmed",
    "REASON": "Reason the result is flagged",
}
_PROBABILITY_CODES = dict(zip(CLASS_NAMES, ("PNORMAL", "PLOW", "POSTEO"), strict=True))


def _code(value: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value, SCHEME, PRIVATE_CODES[value])


def _mg_cm3():
    """UCUM unit of vBMD."""
    import highdicom as hd

    return hd.sr.CodedConcept("mg/cm3", "UCUM", "milligram per cubic centimeter")


def _class_code(name: str):
    """SNOMED CT code of a bone condition class: Normal (17621005), Osteopenia (312894000), Osteoporosis (64859006)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if name == "normal":
        return codes.SCT.Normal
    if name == "low_bone_mass":
        return hd.sr.CodedConcept("312894000", "SCT", "Osteopenia")
    return hd.sr.CodedConcept("64859006", "SCT", "Osteoporosis")


def _level_group(lv: dict, seg: pydicom.Dataset, segment: int, series_uid: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..labels_terminology import vertebra_code

    vid = level_id(lv["name"])
    mm, unit_hu, mg_cm3 = codes.UCUM.Millimeter, codes.UCUM.HounsfieldUnit, _mg_cm3()
    ratio = hd.sr.CodedConcept("1", "UCUM", "no units")
    measurements = []
    if lv.get("trabecular_hu") is not None:
        measurements.append(hd.sr.Measurement(codes.DCM.MeanAttenuationCoefficient, lv["trabecular_hu"], unit_hu))
    if lv.get("vbmd_mg_cm3") is not None:
        measurements.append(hd.sr.Measurement(_code("VBMD"), lv["vbmd_mg_cm3"], mg_cm3))
        measurements.append(hd.sr.Measurement(_code("VBMDSD"), lv["vbmd_sd_mg_cm3"], mg_cm3))
    fracture = lv.get("fracture")
    # the site's Topographical modifier (SCT 106233006) takes its value from DCID 2 "Anatomic Modifier" (DICOM PS3.16
    # TID 1419, Finding Site rows; TID 300 $TargetSiteMod): SCT Central for the middle height. DCM 111010 "Center",
    # written before helper-80, is no anatomic modifier but CID 219's "Geometry Graphical Representation" (a shape's
    # centre point)
    sites = {"anterior": codes.SCT.Anterior, "middle": codes.cid2.Central, "posterior": codes.SCT.Posterior}
    if fracture:
        for where, site in sites.items():
            measurements.append(
                hd.sr.Measurement(
                    codes.DCM.Height,
                    fracture[f"height_{where}_mm"],
                    mm,
                    finding_sites=[hd.sr.FindingSite(vertebra_code(vid), topographical_modifier=site)],
                )
            )
        if fracture.get("height_loss") is not None:
            measurements.append(hd.sr.Measurement(_code("HLOSS"), fracture["height_loss"], ratio))
    for name, p in (lv["probabilities"] or {}).items():  # none for labels off the bone
        measurements.append(hd.sr.Measurement(_code(_PROBABILITY_CODES[name]), p, ratio))
    evaluations = []
    if lv["prediction"]:
        evaluations.append(hd.sr.QualitativeEvaluation(_code("BCCNET"), _class_code(lv["prediction"])))
    if lv.get("acr_category"):
        evaluations.append(hd.sr.QualitativeEvaluation(_code("ACRQCT"), _class_code(lv["acr_category"])))
    # whether the level carries a flag: its reasons are in result.json and the report, which the SR names
    evaluations.append(hd.sr.QualitativeEvaluation(_code("FLAGGED"), _yes_no(lv.get("uncertain", False))))
    if fracture:
        evaluations.append(hd.sr.QualitativeEvaluation(_code("GENANT"), _code(f"GENANT{fracture['genant_grade']}")))
        if fracture["shape"]:
            evaluations.append(hd.sr.QualitativeEvaluation(_code("SHAPE"), _code(fracture["shape"].upper())))
        doubt = fracture.get("grade_doubt")
        if doubt:  # fracture.grade_doubt: the grade the heights' uncertainty at this slice spacing allows
            evaluations.append(hd.sr.QualitativeEvaluation(_code("GRADEDOUBT"), _code(f"GENANT{doubt['grade']}")))
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=lv["name"]),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=segment,
            source_series=hd.sr.SourceSeriesForSegmentation(series_uid),
        ),
        finding_type=vertebra_code(vid),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def _with_reasons(group, reasons: list[str] | None):
    """``group`` with a TEXT item per reason its result is flagged (helper-38: the SR said only "flagged: Yes";
    the reasons, in result.json and on the report, did not travel with it)."""
    import highdicom as hd

    for reason in reasons or []:
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=_code("REASON"), value=reason, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
            )
        )
    return group


def _yes_no(value: bool):
    from pydicom.sr.codedict import codes

    return codes.SCT.Yes if value else codes.SCT.No


def _overall_group(overall: dict, names_certain: bool | None = None):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mg_cm3 = _mg_cm3()
    ratio = hd.sr.CodedConcept("1", "UCUM", "no units")
    measurements, evaluations = [], []
    # the overall trabecular HU and BCC-Net's probabilities, as result.json's overall holds them (helper-116: the SR
    # carried the levels' but not these)
    if overall.get("trabecular_hu") is not None:
        measurements.append(
            hd.sr.Measurement(codes.DCM.MeanAttenuationCoefficient, overall["trabecular_hu"], codes.UCUM.HounsfieldUnit)
        )
    for name, p in (overall.get("probabilities") or {}).items():
        measurements.append(hd.sr.Measurement(_code(_PROBABILITY_CODES[name]), p, ratio))
    if overall.get("vbmd_mg_cm3") is not None:
        measurements.append(hd.sr.Measurement(_code("VBMD"), overall["vbmd_mg_cm3"], mg_cm3))
        measurements.append(hd.sr.Measurement(_code("VBMDSD"), overall["vbmd_sd_mg_cm3"], mg_cm3))
        evaluations.append(hd.sr.QualitativeEvaluation(_code("ACRQCT"), _class_code(overall["acr_category"])))
    if overall.get("prediction"):
        evaluations.append(hd.sr.QualitativeEvaluation(_code("BCCNET"), _class_code(overall["prediction"])))
    if overall.get("bone_status"):
        evaluations.append(hd.sr.QualitativeEvaluation(_code("STATUS"), _class_code(overall["bone_status"]["class"])))
        # a status "unconfirmed" in BoneScreen's own outputs is no plain finding in the SR either
        confirmed = status_confirmed(overall["bone_status"])
        evaluations.append(hd.sr.QualitativeEvaluation(_code("STATUSCONF"), _yes_no(confirmed)))
    evaluations.append(hd.sr.QualitativeEvaluation(_code("FLAGGED"), _yes_no(overall.get("uncertain", False))))
    if names_certain is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(_code("NAMESCONF"), _yes_no(names_certain)))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="overall"),
        finding_type=_code("OVERALL"),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def _image_library(sources: list[pydicom.Dataset]):
    """The TID 1600 Image Library of the source images: one Image Library Group per modality and frame of reference,
    whose shared descriptors (TID 1602: Modality, Frame of Reference UID) it carries once, and an entry (TID 1601) per
    image or multi-frame file.

    TID 1500 (Measurement Report) requires it: its row 5, ``INCLUDE DTID 1600 "Image Library"``, is mandatory (DICOM
    PS3.16 TID 1500; TID 1600 to 1602 for its content). highdicom adds one only when given every image, each with
    its own ~16 descriptors (0.6 MB for 141 slices; an AttributeError for a multi-frame file, whose PixelSpacing is
    in its functional groups), so it is built here with the descriptors shared by the group (TID 1600 row 3). An
    entry's concept name is highdicom's (SCT 260753009 "Source"). A group whose Modality is not one of CID 29
    (Acquisition Modality) gets no shared descriptors rather than a code outside that context group.

    Returns
    -------
    highdicom.sr.ContainerContentItem
        The CONTAINER (DCM 111028 "Image Library"), relationship CONTAINS.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    modalities = {code.value: code for code in codes.cid29.concepts.values()}
    groups: dict[tuple[str, str], list[pydicom.Dataset]] = {}
    for ds in sources:
        key = (str(ds.get("Modality", "") or ""), str(ds.get("FrameOfReferenceUID", "") or ""))
        groups.setdefault(key, []).append(ds)
    contains, acquisition = hd.sr.RelationshipTypeValues.CONTAINS, hd.sr.RelationshipTypeValues.HAS_ACQ_CONTEXT
    library = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibrary, relationship_type=contains)
    library.ContentSequence = hd.sr.ContentSequence()
    for (modality, frame_of_reference), images in groups.items():
        group = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibraryGroup, relationship_type=contains)
        group.ContentSequence = hd.sr.ContentSequence()
        if modality in modalities:  # TID 1600 row 3: TID 1602's descriptors shared by the group's entries
            group.ContentSequence.append(
                hd.sr.CodeContentItem(
                    name=codes.DCM.Modality, value=modalities[modality], relationship_type=acquisition
                )
            )
            if frame_of_reference:
                group.ContentSequence.append(
                    hd.sr.UIDRefContentItem(
                        name=codes.DCM.FrameOfReferenceUID, value=frame_of_reference, relationship_type=acquisition
                    )
                )
        for ds in images:  # TID 1600 row 4, TID 1601 row 1: one IMAGE entry per image (file)
            group.ContentSequence.append(
                hd.sr.ImageContentItem(
                    name=hd.sr.CodedConcept("260753009", "SCT", "Source"),
                    referenced_sop_class_uid=ds.SOPClassUID,
                    referenced_sop_instance_uid=ds.SOPInstanceUID,
                    relationship_type=contains,
                )
            )
        library.ContentSequence.append(group)
    return library


def _with_image_library(report, sources: list[pydicom.Dataset]):
    """``report`` (a highdicom MeasurementReport) with the Image Library of ``sources`` in TID 1500's row 5: after
    the observation context and the procedure reported (rows 2 to 4), before the Imaging Measurements (row 6)."""
    from pydicom.sr.codedict import codes

    items = report[0].ContentSequence
    measurements = next(
        (
            i
            for i, item in enumerate(items)
            if item.ValueType == "CONTAINER"
            and item.ConceptNameCodeSequence[0].CodeValue == codes.DCM.ImagingMeasurements.value
        ),
        len(items),
    )
    items.insert(measurements, _image_library(sources))
    return report


def write_dicom_sr(
    volume: CTVolume, seg_path: str | os.PathLike, result: dict, path: str | os.PathLike, series_number: int = 9902
) -> list[str]:
    """Write the TID 1500 Measurement Report of ``result`` (result.json's content) to ``path``.

    Parameters
    ----------
    volume : CTVolume
        The screened CT, read from DICOM (its source images are referenced).
    seg_path : path
        The DICOM SEG written for the same labels (:func:`~bonescreen.io.writers.write_dicom_seg`): each
        level's measurements reference its segment.
    result : dict
        result.json's ``levels`` and ``overall``.

    Returns
    -------
    list of str
        The identifying tags (patient, study) the SR carries, copied from the source series.

    Raises
    ------
    BoneScreenError
        If the volume has no DICOM source, the SEG cannot be read or lacks a level's segment, or
        highdicom refuses the report.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .dicom import quiet_pydicom
    from .identifiers import patient_identifiers, redact, without_header_values
    from .writers import check_referenced_uids, save_dicom, source_headers

    if volume.source.kind != "dicom":
        raise BoneScreenError("a DICOM SR needs a DICOM source series", volume.source.path)
    try:
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
        segments = {str(s.SegmentLabel): int(s.SegmentNumber) for s in seg.SegmentSequence}
    except Exception as exc:
        raise BoneScreenError(
            f"the DICOM SEG cannot be read for the SR ({type(exc).__name__}: {exc})", seg_path
        ) from None
    sources = source_headers(volume)
    check_referenced_uids(sources, "SR", volume.source.path)
    series_uid = str(sources[0].SeriesInstanceUID)
    groups = []
    for lv in result["levels"]:
        if lv["name"] not in segments:
            raise BoneScreenError(f"the DICOM SEG has no segment for {lv['name']}", seg_path)
        groups.append(_with_reasons(_level_group(lv, seg, segments[lv["name"]], series_uid), lv.get("reasons")))
    if result["overall"].get("prediction") or result["overall"].get("vbmd_mg_cm3") is not None:
        names_certain = (result.get("segmentation") or {}).get("naming_certain")
        groups.append(_with_reasons(_overall_group(result["overall"], names_certain), result["overall"].get("reasons")))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="BoneScreen", model_name="bonescreen " + __version__
        ),
    )
    try:
        with quiet_pydicom():  # highdicom warns about unusual patient names, pydicom logs malformed values
            report = hd.sr.MeasurementReport(
                observation_context=hd.sr.ObservationContext(observer_device_context=observer),
                procedure_reported=hd.sr.CodedConcept("77477000", "SCT", "Computed tomography"),
                imaging_measurements=groups,
            )
            _with_image_library(report, sources)
            sr = hd.sr.Comprehensive3DSR(
                evidence=[*sources, seg],
                content=report[0],
                series_instance_uid=hd.UID(),
                series_number=series_number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="BoneScreen",
                is_complete=True,
            )
    except Exception as exc:  # its text may quote a header value: the patient's identifiers are taken out
        why = redact(f"{type(exc).__name__}: {without_header_values(str(exc))}", patient_identifiers(sources[0]))
        raise BoneScreenError(f"cannot build a DICOM SR for this series ({why})", volume.source.path) from None
    return save_dicom(sr, path)


def read_sr_levels(path: str | os.PathLike) -> dict[str, dict]:
    """The numbers and codes of a BoneScreen SR, by group (``L1``..``L5``, ``overall``): a reader for tests and users.

    Returns
    -------
    dict
        group -> ``{"measurements": {code meaning (+ site): value}, "evaluations": {meaning: value meaning},
        "reasons": [why the result is flagged, as result.json says], "segment": referenced segment number or
        None, "segmentation_uid": the SEG's SOPInstanceUID or None}``.
    """
    import highdicom as hd

    sr = hd.sr.srread(path)
    out = {}
    groups = sr.content.get_volumetric_roi_measurement_groups() + sr.content.get_image_measurement_groups()
    for group in groups:
        out[str(group.tracking_identifier)] = _read_group(group)
    return out


def _read_group(group) -> dict:
    measurements = {}
    for m in group.get_measurements():
        key = m.name.meaning
        sites = getattr(m, "finding_sites", None) or []
        if sites and sites[0].topographical_modifier is not None:
            key += " " + sites[0].topographical_modifier.meaning
        measurements[key] = float(np.float64(m.value))
    evaluations = {e.name.meaning: e.value.meaning for e in group.get_qualitative_evaluations()}
    reasons = [
        str(item.TextValue)
        for item in group[0].ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "REASON"
    ]
    segment = getattr(group, "referenced_segment", None)
    return {
        "measurements": measurements,
        "evaluations": evaluations,
        "reasons": reasons,
        "segment": None if segment is None else int(segment.referenced_segment_numbers[0]),
        "segmentation_uid": None if segment is None else str(segment.referenced_sop_instance_uid),
    }
