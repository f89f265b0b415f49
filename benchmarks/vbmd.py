"""vBMD (internal calibration), ACR categories and fracture grades against a phantom set's truth.

For each case of a realistic phantom set (``bonescreen phantom DIR --realistic ...``: HU computed over a
tube spectrum of 80-140 kVp with beam hardening, tissue densities and marrow fat that vary per patient,
contrast phases, fractures of known grade) this measures, per lumbar level, with the bodies either
from the phantom's truth (``--masks truth``: isolates the measurement), from the true whole-vertebra
labels as a user's corrected mask (``--masks labels``: the body is cut out of each vertebra, as
``bonescreen screen --labels`` and napari's Classify do) or from the pipeline (``--masks pipeline``:
MS-Net's mark, the level split and naming, as ``bonescreen screen`` does):

- the trabecular HU (hu.trabecular_hu), the scan's internal calibration (reference tissues, effective
  energy) and vBMD (mg/cm3) with its uncertainty, against the truth vBMD of cases.csv;
- the ACR category of vBMD and, beside it, the category of the uncalibrated HU thresholds (Pickhardt
  110/160 HU), against the truth vBMD's ACR category, on the levels more than 10 mg/cm3 from a
  category boundary;
- heights (anterior, middle, posterior) against the truth heights, and the Genant grade against the
  drawn fracture's; beside it, the grades the same rule gives from the phantom's exact heights: the
  reading's ceiling, since a level's normal shape differs from its neighbours' (about 0.04 SD per ratio)
  and no reading of neighbours can know a body's own shape before it broke;
- BCC-Net's per-level class against the case's class (on the true vertebrae, or the pipeline's), also
  by tube voltage (``--cls-weights`` another BCC-Net);
- with ``--masks labels|pipeline``, each case's overall vBMD and its ACR category against the truth of the same
  levels, and how many of the cases flagged for a vBMD within its SD of a cut-point, and of the rest, have that
  category wrong (``overall_near_cut_point``).

Levels with cement or screws, and fractured levels (for vBMD), are left out of the vBMD figures, as
the pipeline leaves them out.

Run: .venv/bin/python benchmarks/vbmd.py DIR [--masks truth|labels|pipeline] [--cache MARKS] [--cases N] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from level_split import mark_of  # the same cache of marks (this folder is on the path when run as a script)

from bonescreen.density import acr_category
from bonescreen.fracture import assess_fractures
from bonescreen.hu import HUThresholds, hu_category, trabecular_hu, unlike_neighbours
from bonescreen.io import load_ct
from bonescreen.io.writers import read_labels_nifti
from bonescreen.labels import ALL_VERTEBRA_IDS, LEVEL_NAMES, level_id
from bonescreen.pipeline.bone_health import level_density, level_fractures, scan_calibration

BOUNDARY_MARGIN = 10.0


def truth_masks(folder: Path, volume) -> tuple[np.ndarray, np.ndarray]:
    """(all vertebrae, lumbar bodies) from the phantom's truth files."""
    spine = read_labels_nifti(volume, folder / "spine.nii.gz", allowed=(0, *ALL_VERTEBRA_IDS))
    body = read_labels_nifti(volume, folder / "body.nii.gz")
    return spine, body


def pipeline_levels(volume, screener, labels: np.ndarray | None = None, mark: np.ndarray | None = None) -> dict:
    """The pipeline's per-level results on one case: on ``labels`` (a user's checked whole-vertebra labels,
    as ``bonescreen screen --labels``), else segment (or split and name MS-Net's cached ``mark``) and classify,
    as ``bonescreen screen``."""
    if labels is not None:
        return screener.classify(volume, labels)
    seg = screener.segment(volume) if mark is None else screener.name_mark(volume, mark)
    return screener.classify(volume, seg.vertebra_labels(), names_certain=seg.certain, mask_checked=False)


def overall_against_truth(overall: dict, row: dict) -> dict | None:
    """The overall vBMD, its ACR category and near-cut-point flag (:func:`~bonescreen.pipeline.bone_health.
    near_cut_point`) beside the truth: cases.csv's vBMD of the same levels, averaged; None without an overall vBMD or
    where the bone status does not rest on it (the flag is given for such a status only)."""
    used = overall["vbmd_levels_used"]
    status = overall.get("bone_status") or {}
    if not str(status.get("basis", "")).startswith("vBMD"):  # a status from a fracture, BCC-Net, or none: never
        return None  # flagged so (review, helper-112: such cases were counted as "unflagged")
    if overall["vbmd_mg_cm3"] is None or not all(row.get(f"vbmd_{n}") for n in used):
        return None
    truth = float(np.mean([float(row[f"vbmd_{n}"]) for n in used]))
    return {
        "vbmd": overall["vbmd_mg_cm3"],
        "sd": overall["vbmd_sd_mg_cm3"],
        "truth_vbmd": round(truth, 1),
        "category_right": acr_category(overall["vbmd_mg_cm3"]) == acr_category(truth),
        "near_cut_point": any("ACR cut-point" in r for r in overall["reasons"]),
    }


def near_cut_summary(cases: list[dict]) -> dict:
    """How the overall flag of a vBMD within its SD of an ACR cut-point fares: the cases flagged and not, and how
    many of each have the overall category wrong against the truth (the flag is worth its noise when the wrong
    categories gather among the flagged)."""
    rows = [c["overall"] for c in cases if c.get("overall")]
    flagged = [r for r in rows if r["near_cut_point"]]
    clear = [r for r in rows if not r["near_cut_point"]]
    return {
        "cases": len(rows),
        "flagged": len(flagged),
        "flagged_category_wrong": sum(not r["category_right"] for r in flagged),
        "unflagged": len(clear),
        "unflagged_category_wrong": sum(not r["category_right"] for r in clear),
    }


def near_boundary(vbmd: float) -> bool:
    return min(abs(vbmd - 80.0), abs(vbmd - 120.0)) <= BOUNDARY_MARGIN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--masks", choices=["truth", "labels", "pipeline"], default="truth")
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=Path("bench-out/vbmd.json"))
    ap.add_argument("--cls-weights", type=Path, default=None, help="BCC-Net weights (default: the bundled)")
    ap.add_argument("--seg-weights", type=Path, default=None, help="MS-Net weights for --masks pipeline")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="--masks pipeline: keep MS-Net's marks here and reuse them (as level_split.py's --cache; delete the "
        "folder after changing the network or the mark's repair)",
    )
    args = ap.parse_args()
    rows = list(csv.DictReader((args.folder / "cases.csv").open()))[: args.cases]
    from bonescreen.pipeline import Screener

    screener = Screener(device=args.device, seg_weights=args.seg_weights, cls_weights=args.cls_weights)
    levels, cases = [], []
    t0 = time.perf_counter()
    for row in rows:
        folder = args.folder / row["case_id"]
        volume = load_ct(folder / "ct.nii.gz")
        skip = set(row.get("cement_levels", "").split()) | set(row.get("screw_levels", "").split())
        if args.masks == "truth":
            spine, body = truth_masks(folder, volume)
            calibration = scan_calibration(volume.hu, spine, body, volume.spacing, volume.acquisition)
            # BCC-Net on the true vertebrae, as ``screen --labels`` classifies a user's corrected mask
            network = {lv["name"]: lv["prediction"] for lv in screener.classify(volume, spine)["levels"]}
            hu = trabecular_hu(volume.hu, body, volume.spacing)
            fractures = level_fractures(body, volume.spacing)
            measured = {}
            for lv, m in hu.items():
                d = level_density(m, calibration)
                measured[LEVEL_NAMES[lv]] = {
                    "hu": m["mean_hu"],
                    "vbmd": d["vbmd_mg_cm3"],
                    "sd": d["vbmd_sd_mg_cm3"],
                    "fracture": fractures.get(LEVEL_NAMES[lv]),
                    "class": network.get(LEVEL_NAMES[lv]),
                }
            cal = calibration.as_dict()
        else:
            labels = truth_masks(folder, volume)[0] if args.masks == "labels" else None
            mark = None
            if args.masks == "pipeline" and args.cache is not None:
                mark = mark_of(screener, volume, args.cache, row["case_id"])
            result = pipeline_levels(volume, screener, labels, mark)
            measured = {
                lv["name"]: {
                    "hu": lv["trabecular_hu"],
                    "vbmd": lv["vbmd_mg_cm3"],
                    "sd": lv["vbmd_sd_mg_cm3"],
                    "fracture": lv["fracture"],
                    "class": lv["prediction"],
                }
                for lv in result["levels"]
            }
            cal = result["density_calibration"]
            overall = overall_against_truth(result["overall"], row)
        cases.append(
            {
                "case": row["case_id"],
                **({"overall": overall} if args.masks != "truth" else {}),
                "kvp": row.get("kvp") or None,
                "phase": row.get("phase") or None,
                "energy_kev": cal["effective_energy_kev"],
                "tissues": {k: v["hu"] for k, v in cal["reference_tissues"].items()},
                "flags": cal["flags"],
            }
        )
        # levels whose HU is unlike their neighbours' (flagged; the odd one left out of the overall figures): on
        # sound bodies each is a false alarm, on cement a catch
        unlike, odd = unlike_neighbours({level_id(n): m["hu"] for n, m in measured.items() if level_id(n)})
        for name, m in measured.items():
            m["unlike_neighbours"] = level_id(name) in unlike
            m["odd_one_out"] = level_id(name) in odd
            if not row.get(f"vbmd_{name}"):
                continue
            grade = int(row.get(f"genant_grade_{name}") or 0)
            truth = float(row[f"vbmd_{name}"])
            heights = {w: row.get(f"height_{w}_mm_{name}") for w in ("anterior", "middle", "posterior")}
            levels.append(
                {
                    "case": row["case_id"],
                    "level": name,
                    "kvp": float(row["kvp"]) if row.get("kvp") else None,  # the first phantom draws none
                    "phase": row.get("phase") or None,
                    "truth_vbmd": truth,
                    "truth_class": row["class"],
                    "truth_grade": grade,
                    "truth_shape": row.get(f"fracture_shape_{name}") or None,
                    "truth_heights": {k: float(v) for k, v in heights.items() if v},
                    "excluded": name in skip,
                    **m,
                }
            )
        print(
            f"{row['case_id']}: {row.get('kvp') or '?'} kVp, {row.get('phase') or '?':<8} "
            f"E={cal['effective_energy_kev']} keV  "
            + "  ".join(
                f"{n} {m['vbmd']:.0f}/{float(row['vbmd_' + n]):.0f}"
                for n, m in measured.items()
                if m["vbmd"] is not None and row.get(f"vbmd_{n}")
            ),
            flush=True,
        )
    summary = summarize(levels, args.folder, time.perf_counter() - t0)
    if args.masks != "truth":
        summary["overall_near_cut_point"] = near_cut_summary(cases)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"summary": summary, "cases": cases, "levels": levels}, indent=1))
    print(json.dumps(summary, indent=1))


def summarize(levels: list[dict], folder: Path, seconds: float) -> dict:
    """The figures: vBMD error and ACR agreement (unfractured, no cement or metal), grades, heights, BCC-Net."""
    density = [lv for lv in levels if not lv["excluded"] and lv["truth_grade"] == 0 and lv["vbmd"] is not None]
    err = np.array([lv["vbmd"] - lv["truth_vbmd"] for lv in density])
    clear = [lv for lv in density if not near_boundary(lv["truth_vbmd"])]
    thresholds = HUThresholds()

    def agree(fn) -> float | None:
        return round(float(np.mean([fn(lv) == acr_category(lv["truth_vbmd"]) for lv in clear])), 3) if clear else None

    by_kvp = {}
    for kvp in sorted({lv["kvp"] for lv in density if lv["kvp"] is not None}):
        e = np.array([lv["vbmd"] - lv["truth_vbmd"] for lv in density if lv["kvp"] == kvp])
        by_kvp[f"{kvp:.0f}"] = {
            "levels": len(e),
            "mae": round(float(np.abs(e).mean()), 1),
            "bias": round(float(e.mean()), 1),
        }
    by_phase = {}
    for phase in sorted({lv["phase"] for lv in density if lv["phase"] is not None}):
        e = np.array([lv["vbmd"] - lv["truth_vbmd"] for lv in density if lv["phase"] == phase])
        by_phase[phase] = {
            "levels": len(e),
            "mae": round(float(np.abs(e).mean()), 1),
            "bias": round(float(e.mean()), 1),
        }
    fractured = [lv for lv in levels if lv["truth_grade"] > 0 and lv["fracture"] and not lv["excluded"]]
    unfractured = [lv for lv in levels if lv["truth_grade"] == 0 and lv["fracture"] and not lv["excluded"]]
    walls = ("anterior", "middle", "posterior")
    signed = {w: [] for w in walls}
    for lv in levels:
        if lv["fracture"] and lv["truth_heights"] and not lv["excluded"]:
            for w in walls:
                if lv["fracture"][f"height_{w}_mm"] is not None and w in lv["truth_heights"]:
                    signed[w].append(lv["fracture"][f"height_{w}_mm"] - lv["truth_heights"][w])
    height_err = np.abs(np.array([e for w in walls for e in signed[w]]))
    classified = [lv for lv in levels if lv["class"] is not None]
    ceiling = grades_from_true_heights(levels)
    out = {
        "set": str(folder),
        "seconds": round(seconds, 1),
        "vbmd": {
            "levels": len(density),
            "mae_mg_cm3": round(float(np.abs(err).mean()), 2) if err.size else None,
            "bias_mg_cm3": round(float(err.mean()), 2) if err.size else None,
            "median_abs_mg_cm3": round(float(np.median(np.abs(err))), 2) if err.size else None,
            "max_abs_mg_cm3": round(float(np.abs(err).max()), 1) if err.size else None,
            "within_1sd": round(float(np.mean([abs(lv["vbmd"] - lv["truth_vbmd"]) <= lv["sd"] for lv in density])), 3)
            if density
            else None,
            "by_kvp": by_kvp,
            "by_phase": by_phase,
        },
        "acr_agreement_clear_levels": {
            "levels": len(clear),
            "vbmd": agree(lambda lv: acr_category(lv["vbmd"])),
            "hu_thresholds_110_160": agree(lambda lv: hu_category(lv["hu"], thresholds)),
        },
        "fractures": {
            "fractured_levels": len(fractured),
            "grade_exact": round(
                float(np.mean([lv["fracture"]["genant_grade"] == lv["truth_grade"] for lv in fractured])), 3
            )
            if fractured
            else None,
            "grade_exact_by_grade": exact_by_grade(
                [(lv["fracture"]["genant_grade"], lv["truth_grade"]) for lv in fractured]
            ),
            "grade_within_one": round(
                float(np.mean([abs(lv["fracture"]["genant_grade"] - lv["truth_grade"]) <= 1 for lv in fractured])), 3
            )
            if fractured
            else None,
            "unfractured_levels": len(unfractured),
            "grade_2_3_on_unfractured": int(sum(lv["fracture"]["genant_grade"] >= 2 for lv in unfractured)),
            "grade_1_on_unfractured": int(sum(lv["fracture"]["genant_grade"] == 1 for lv in unfractured)),
            "heights_measured": int(height_err.size),
            "heights_within_1_5_mm": round(float(np.mean(height_err <= 1.5)), 3) if height_err.size else None,
            "height_mae_mm": round(float(height_err.mean()), 2) if height_err.size else None,
            "height_bias_mm": {w: round(float(np.mean(e)), 2) for w, e in signed.items() if e},
            "from_true_heights": ceiling,
            "grade_doubt": doubt_summary(fractured + unfractured),
        },
        # hu.unlike_neighbours: false alarms on sound bodies (unfractured, no cement or metal), catches on cement
        "unlike_neighbours": {
            "sound_levels": sum(not lv["excluded"] and lv["truth_grade"] == 0 for lv in levels),
            "sound_flagged": sum(
                lv["unlike_neighbours"] for lv in levels if not lv["excluded"] and lv["truth_grade"] == 0
            ),
            "sound_left_out": sum(lv["odd_one_out"] for lv in levels if not lv["excluded"] and lv["truth_grade"] == 0),
            "fractured_flagged": sum(lv["unlike_neighbours"] for lv in levels if lv["truth_grade"] > 0),
            "cement_or_metal_levels": sum(lv["excluded"] for lv in levels),
            "cement_or_metal_flagged": sum(lv["unlike_neighbours"] for lv in levels if lv["excluded"]),
        },
        "bccnet_level_accuracy": round(float(np.mean([lv["class"] == lv["truth_class"] for lv in classified])), 3)
        if classified
        else None,
        "bccnet_level_accuracy_by_kvp": {
            f"{kvp:.0f}": round(
                float(np.mean([lv["class"] == lv["truth_class"] for lv in classified if lv["kvp"] == kvp])), 3
            )
            for kvp in sorted({lv["kvp"] for lv in classified if lv["kvp"] is not None})
        },
    }
    return out


def doubt_summary(levels: list[dict]) -> dict:
    """How the flag of a grade near grade 2's bound (``fracture.grade_doubt``) fares against the drawn grades.

    ``flagged``: levels flagged; ``flagged_wrong_side``: of those, the ones whose drawn grade is on the other
    side of the bound from the measured one; ``wrong_side``: all levels measured on the wrong side of the
    bound (grade 0-1 against 2-3), and ``wrong_side_flagged`` how many of them carry the flag.
    """
    wrong = [lv for lv in levels if (lv["fracture"]["genant_grade"] >= 2) != (lv["truth_grade"] >= 2)]
    flagged = [lv for lv in levels if lv["fracture"].get("grade_doubt")]
    return {
        "flagged": len(flagged),
        "flagged_wrong_side": sum(lv in wrong for lv in flagged),
        "wrong_side": len(wrong),
        "wrong_side_flagged": sum(bool(lv["fracture"].get("grade_doubt")) for lv in wrong),
    }


def exact_by_grade(pairs: list[tuple[int, int]]) -> dict[str, str]:
    """'right/levels' for each drawn grade, from (measured, drawn) grade pairs."""
    return {str(g): f"{sum(m == t for m, t in pairs if t == g)}/{sum(t == g for _, t in pairs)}" for g in (1, 2, 3)}


def grades_from_true_heights(levels: list[dict]) -> dict:
    """The Genant grades :func:`~bonescreen.fracture.assess_fractures` gives from each case's exact heights
    (cases.csv) against the drawn grades: what a perfect height measurement would reach with this rule."""
    by_case: dict[str, dict[str, dict]] = {}
    for lv in levels:
        if len(lv["truth_heights"]) == 3:
            by_case.setdefault(lv["case"], {})[lv["level"]] = lv
    fractured, unfractured = [], []
    for case_levels in by_case.values():
        order = [n for n in ("L1", "L2", "L3", "L4", "L5") if n in case_levels]
        graded = assess_fractures({n: case_levels[n]["truth_heights"] for n in order}, order)
        for n in order:
            lv = case_levels[n]
            if lv["excluded"]:
                continue
            (fractured if lv["truth_grade"] else unfractured).append((graded[n]["genant_grade"], lv["truth_grade"]))
    return {
        "fractured_levels": len(fractured),
        "grade_exact": round(float(np.mean([g == t for g, t in fractured])), 3) if fractured else None,
        "grade_exact_by_grade": exact_by_grade(fractured),
        "grade_2_3_on_unfractured": int(sum(g >= 2 for g, _ in unfractured)),
        "grade_1_on_unfractured": int(sum(g == 1 for g, _ in unfractured)),
    }


if __name__ == "__main__":
    main()
