"""Data layer: dataset loaders, label tasks, normalisation and synthetic ECG; torch-free
(the runtime imports it). Import from the defining module (``mrm_edge.data.dataset``, ...)."""
