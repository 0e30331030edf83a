"""Files on disk: reading scans (NIfTI, NRRD, MHA, DICOM), atomic writes, segmentations, model folders and their
checksums, and the model registry."""
