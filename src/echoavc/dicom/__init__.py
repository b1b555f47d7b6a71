"""DICOM input and output: reading frames, de-identification, writing."""
