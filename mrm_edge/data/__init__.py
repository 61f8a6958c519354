"""Data layer: dataset loaders, label tasks, normalisation and synthetic ECG.

Torch-free on purpose: the edge runtime imports this package, so it depends only on
numpy, scipy and (lazily, for PTB-XL records) wfdb.
"""

from .cpsc2018 import CPSC_CODES, CPSC_LABELS, CPSC_TASK, load_cpsc2018, read_cpsc_mat
from .dataset import LEADS, UNITS, EcgDataset, load_dataset
from .errors import DataError
from .normalization import LeadStandardizer
from .ptbxl import TASKS, aggregate_labels, load_ptbxl, ptbxl_fold_counts, read_ptbxl_record
from .signal import fit_length, resample
from .synthetic import RHYTHMS, SyntheticPatient, SyntheticStream, make_patients, synthesize

__all__ = [
    "CPSC_CODES",
    "CPSC_LABELS",
    "CPSC_TASK",
    "LEADS",
    "RHYTHMS",
    "TASKS",
    "UNITS",
    "DataError",
    "EcgDataset",
    "LeadStandardizer",
    "SyntheticPatient",
    "SyntheticStream",
    "aggregate_labels",
    "fit_length",
    "load_cpsc2018",
    "load_dataset",
    "load_ptbxl",
    "make_patients",
    "ptbxl_fold_counts",
    "read_cpsc_mat",
    "read_ptbxl_record",
    "resample",
    "synthesize",
]
