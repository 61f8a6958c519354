"""OpenVINO backend (the ``openvino`` extra). Importing this package imports no openvino."""
