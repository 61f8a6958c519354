"""One stream's path from raw chunks to model-ready windows: resample → buffer (gaps) →
windower → quality → preprocess (``StreamPreprocessor`` ties them together)."""
