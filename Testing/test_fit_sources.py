"""fit, before any heavy work: which scans a source holds (BIDS, IXI, CSV, plain folder, DICOM), whose subject each
is, the subject split, the settings a rerun may and may not change, and the bad sources that must stop with one line
and nothing written."""

from __future__ import annotations

import json

import pytest
from fit_scans import write_dicom_series

from contrastive_anomaly.cli.main import main
from contrastive_anomaly.data.sources import discover_scans, ixi_match, named_contrast
from contrastive_anomaly.errors import InputError
from contrastive_anomaly.jobs.fit.cache import CachedScan
from contrastive_anomaly.jobs.fit.request import FitRequest, resolve_settings, start_record
from contrastive_anomaly.jobs.fit.split import freeze_plan, split_scans
from engine_fixtures import small_config


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not read during discovery")
    return root


def test_bids_names_choose_the_contrast_and_the_subject(tmp_path):
    _touch(tmp_path, "dataset_description.json", "sub-01/anat/sub-01_T1w.nii.gz",
           "sub-01/ses-2/anat/sub-01_ses-2_acq-mprage_T1w.nii.gz", "sub-01/anat/sub-01_T2w.nii.gz",
           "sub-02/anat/sub-02_run-1_T1w.nii.gz", "sub-02/anat/sub-02_FLAIR.nii.gz", "sub-03/anat/sub-03_PDw.nii",
           "sub-03/anat/sub-03_T1w.json", "derivatives/sub-09/anat/sub-09_T1w.nii.gz")
    t1 = discover_scans(tmp_path, "t1")
    assert t1.kind == "bids"
    assert [(s.scan_id, s.subject) for s in t1.scans] == [
        ("sub-01_T1w", "sub-01"), ("sub-01_ses-2_acq-mprage_T1w", "sub-01"), ("sub-02_run-1_T1w", "sub-02")]
    assert t1.subjects == ["sub-01", "sub-02"]
    assert t1.other_contrasts == {"FLAIR": 1, "PD": 1, "T2": 1}
    assert [s.scan_id for s in discover_scans(tmp_path, "FLAIR").scans] == ["sub-02_FLAIR"]
    assert [s.subject for s in discover_scans(tmp_path, "PD").scans] == ["sub-03"]


def test_ixi_names_give_subject_and_contrast(tmp_path):
    assert ixi_match("IXI002-Guys-0828-T1.nii.gz") == ("IXI002", "T1")
    assert ixi_match("IXI012-HH-1211-PD.nii.gz") == ("IXI012", "PD")
    assert ixi_match("subject-T1.nii.gz") is None
    _touch(tmp_path, "IXI002-Guys-0828-T1.nii.gz", "IXI002-Guys-0828-T2.nii.gz", "IXI012-HH-1211-T1.nii.gz",
           "IXI013-IOP-0873-PD.nii.gz", "IXI014-HH-1236-MRA.nii.gz", "README.txt")
    t1 = discover_scans(tmp_path, "T1")
    assert t1.kind == "ixi" and t1.subjects == ["IXI002", "IXI012"]
    assert [s.scan_id for s in t1.scans] == ["IXI002-Guys-0828-T1", "IXI012-HH-1211-T1"]
    assert discover_scans(tmp_path, "T2").subjects == ["IXI002"]
    with pytest.raises(InputError, match=r"no FLAIR scans .*1 MRA, 1 PD, 2 T1, 1 T2") as info:
        discover_scans(tmp_path, "FLAIR")
    assert "\n" not in str(info.value)


def test_plain_folder_subjects_from_stems_or_subfolders(tmp_path):
    _touch(tmp_path, "alice.nii.gz", "bob.nrrd", "bob_brain_mask.nii.gz", "carol_T2w.nii.gz", "notes.txt",
           "dave/visit1.mha", "dave/visit2.mha", "erin/scan_FLAIR.nii.gz")
    found = discover_scans(tmp_path, "T1")
    assert found.kind == "folder"
    assert [(s.scan_id, s.subject) for s in found.scans] == [
        ("alice", "alice"), ("bob", "bob"), ("dave_visit1", "dave"), ("dave_visit2", "dave")]
    assert found.other_contrasts == {"FLAIR": 1, "T2": 1}
    assert named_contrast("T2 FLAIR axial") == "FLAIR" and named_contrast("sag MPRAGE") == "T1"
    assert named_contrast("localizer") is None


def test_dicom_series_subject_from_patient_id(tmp_path):
    write_dicom_series(tmp_path / "visit1", 1, patient="P-001")
    write_dicom_series(tmp_path / "visit2", 2, patient="P-001")
    write_dicom_series(tmp_path / "other", 3, patient="P-002")
    write_dicom_series(tmp_path / "flair", 4, patient="P-003", description="AX T2 FLAIR")
    found = discover_scans(tmp_path, "T1")
    assert [(s.scan_id, s.subject) for s in found.scans] == [("other", "P-002"), ("visit1", "P-001"),
                                                             ("visit2", "P-001")]
    assert all(s.series_uid and len(s.files) > 1 for s in found.scans)
    assert found.other_contrasts == {"FLAIR": 1}


def test_csv_list_with_subjects_and_contrasts(tmp_path):
    _touch(tmp_path, "data/a.nii.gz", "data/b.nii.gz", "data/c.nii.gz", "data/sub-07_T1w.nii.gz")
    listing = tmp_path / "scans.csv"
    listing.write_text("path,subject,contrast\ndata/a.nii.gz,s1,T1\ndata/b.nii.gz,s1,t1\ndata/c.nii.gz,s2,T2\n"
                       "data/sub-07_T1w.nii.gz,,\n", encoding="utf-8")
    found = discover_scans(listing, "T1")
    assert found.kind == "csv" and found.other_contrasts == {"T2": 1}
    assert [(s.scan_id, s.subject) for s in found.scans] == [("a", "s1"), ("b", "s1"), ("sub-07_T1w", "sub-07")]
    assert found.scans[0].path == (tmp_path / "data" / "a.nii.gz").resolve()
    bad = tmp_path / "bad.csv"
    bad.write_text("file\na.nii.gz\n", encoding="utf-8")
    with pytest.raises(InputError, match="'path' column"):
        discover_scans(bad, "T1")


def _cached(scan_id, subject):
    from contrastive_anomaly.data.sources import ScanSource

    return CachedScan(scan=ScanSource(scan_id, subject, None, ()), sha256=f"hash-{scan_id}", status="ok")


def test_split_is_by_subject_seeded_and_frozen(tmp_path):
    usable = [_cached(f"{subject}_{visit}", subject) for subject in "abcdefghij" for visit in (1, 2)]
    plan = split_scans(usable, fraction=0.2, seed=5)
    assert len(plan.held_out_subjects) == 2 and len(plan.train_subjects) == 8
    assert not set(plan.held_out_subjects) & set(plan.train_subjects)
    assert all(plan.role_of(f"{s}_2") == "held-out" for s in plan.held_out_subjects)
    assert split_scans(usable, fraction=0.2, seed=5).held_out_subjects == plan.held_out_subjects
    assert split_scans(usable, fraction=0.2, seed=6).held_out_subjects != plan.held_out_subjects
    two = split_scans(usable[:4], fraction=0.2, seed=0)
    assert len(two.held_out_subjects) == 1 and len(two.train_subjects) == 1
    with pytest.raises(InputError, match="at least 2 subjects"):
        split_scans(usable[:2], fraction=0.2, seed=0)
    freeze_plan(plan, tmp_path)
    freeze_plan(split_scans(usable, fraction=0.2, seed=5), tmp_path)  # same data: accepted
    with pytest.raises(InputError, match="1 added"):
        freeze_plan(split_scans([*usable, _cached("k_1", "k")], fraction=0.2, seed=5), tmp_path)


def test_rerun_keeps_the_record_and_refuses_incompatible_changes(tmp_path):
    source = _touch(tmp_path / "src", "a.nii.gz", "b.nii.gz")
    out = tmp_path / "model"
    settings = resolve_settings(FitRequest(out_dir=out, healthy=source, contrast="T1", preset="tiny", steps=7))
    start_record(settings)
    again = resolve_settings(FitRequest(out_dir=out, resume=True))
    assert (again.healthy, again.contrast, again.cfg.diffusion_training.steps) == (source.resolve(), "T1", 7)
    assert again.cfg.encoder.widths == settings.cfg.encoder.widths
    longer = resolve_settings(FitRequest(out_dir=out, steps=20))
    assert longer.cfg.diffusion_training.steps == 20
    with pytest.raises(InputError, match="another .*setting"):
        resolve_settings(FitRequest(out_dir=out, preset="compact"))
    with pytest.raises(InputError, match="another .*setting"):
        resolve_settings(FitRequest(out_dir=out, seed=99))
    with pytest.raises(InputError, match="holds a fit of T1"):
        resolve_settings(FitRequest(out_dir=out, healthy=source, contrast="T2"))
    normalised = small_config()
    normalised.postprocess.residual_normalisation = "healthy_voxel_stats"
    normalised.save(tmp_path / "normalised.json")
    with pytest.raises(InputError, match="normalise-on"):
        resolve_settings(FitRequest(out_dir=tmp_path / "other", healthy=source, contrast="T1",
                                    config=tmp_path / "normalised.json"))
    assert not (tmp_path / "other").exists()


def _fails_cleanly(capsys, args, out, pattern):
    code = main(["fit", *args, "--out", str(out), "--progress", "none", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert pattern in err, err
    return err


@pytest.mark.parametrize("case", ["missing", "empty", "contrast", "one_subject", "not_a_scan_list"])
def test_bad_sources_stop_before_anything_is_written(tmp_path, capsys, case):
    source = tmp_path / "source"
    expected = {"missing": "not found", "empty": "no scans found", "contrast": "no PD scans",
                "one_subject": "at least 2 subjects", "not_a_scan_list": "not a folder or a CSV"}[case]
    if case == "empty":
        source.mkdir()
    elif case == "contrast":
        _touch(source, "IXI002-Guys-0828-T1.nii.gz", "IXI003-Guys-0829-T1.nii.gz")
    elif case == "one_subject":
        _touch(source, "sub-01/anat/sub-01_T1w.nii.gz", "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz")
    elif case == "not_a_scan_list":
        source = _touch(tmp_path, "scan.txt") / "scan.txt"
    out = tmp_path / "model"
    contrast = "PD" if case == "contrast" else "T1"
    _fails_cleanly(capsys, ["--healthy", str(source), "--contrast", contrast], out, expected)
    assert not out.exists()


def test_foreign_out_folder_and_resume_without_fit_are_refused(tmp_path, capsys):
    source = _touch(tmp_path / "src", "a.nii.gz", "b.nii.gz")
    busy = _touch(tmp_path / "busy", "thesis.tex")
    _fails_cleanly(capsys, ["--healthy", str(source), "--contrast", "T1"], busy, "not empty and holds no fit")
    assert sorted(p.name for p in busy.iterdir()) == ["thesis.tex"]
    _fails_cleanly(capsys, ["--resume"], tmp_path / "nothing", "nothing to resume")
    assert not (tmp_path / "nothing").exists()
    _fails_cleanly(capsys, [], tmp_path / "nothing", "give --healthy")


def test_fit_record_is_plain_json(tmp_path):
    source = _touch(tmp_path / "src", "a.nii.gz", "b.nii.gz")
    settings = resolve_settings(FitRequest(out_dir=tmp_path / "m", healthy=source, contrast="T2", preset="tiny"))
    start_record(settings)
    record = json.loads((tmp_path / "m" / "fit.json").read_text(encoding="utf-8"))
    assert record["contrast"] == "T2" and record["config"]["contrast"] == "T2" and record["name"] == "m"
