"""`bonescreen reproduce --quick` runs the paper's protocol end to end at CI size and writes every table and figure."""

import csv
import json

from bonescreen.cli import main


def test_reproduce_quick(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", str(out), "--quick", "--device", "cpu"]) == 0
    for name in (
        "tables.md",
        "reproduce.json",
        "table3_segmentation.csv",
        "table4_classification.csv",
        "table5_ablation.csv",
        "figure5_segmentation.png",
        "figure6_roc.png",
        "figure7_confusion.png",
        "figure9_pies.png",
    ):
        assert (out / name).stat().st_size > 100, name
    with open(out / "table5_ablation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["network"] for r in rows] == [
        "densenet121",
        "densenet-1",
        "densenet-2",
        "bccnet",
        "HU thresholds (110/160 HU)",
    ]
    assert rows[3]["paper_accuracy"] == "0.7665"
    summary = json.loads((out / "reproduce.json").read_text())
    assert summary["plan"]["train_cases"] == 6 and summary["plan"]["test_cases"] == 3
    # no case of the test set was used for training: disjoint seeds and ids
    train_ids = {r["case_id"] for r in csv.DictReader(open(out / "data" / "train" / "cases.csv"))}
    test_ids = {r["case_id"] for r in csv.DictReader(open(out / "data" / "test" / "cases.csv"))}
    assert not train_ids & test_ids
    assert "Table 5" in capsys.readouterr().out
