# Two entry points, as the README gives them:
#   make demo   install, then monitor synthetic patients live with the shipped model for 60 s
#   make test   install everything and run the test suite
#
# torch is installed on its own first so that the build can be chosen per machine:
#   make test TORCH="torch==2.13.0"                      (default; CPU wheel on these machines)
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
# Once a torch is present, the `train` extra's range (torch>=2.3) accepts it and pulls nothing.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
# TensorRT-RTX builds engines without a GPU, so the tests build real engines everywhere it
# installs (x86_64); on other machines the extra's marker makes it a no-op.
EXTRAS ?= tensorrt-rtx,openvino,triton,web,web-test,plot,dicom,xml,sierra,edf,lsl,hl7,fhir
# The real tritonserver for the Triton tests and `mrm-edge serve`: nvidia-pytriton's server
# files, installed without its numpy<2 pin (only its Python API needs it; see pyproject.toml).
# Where it has no wheel (not Linux x86_64) the Triton tests skip with the reason.
TRITON_SERVER ?= nvidia-pytriton==0.7.0
BIN    := $(VENV)/bin

.PHONY: demo test lint install clean shipped-model edge-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[train,dev,$(EXTRAS)]"
	$(BIN)/pip install --quiet --no-deps $(TRITON_SERVER) || echo "no $(TRITON_SERVER) here: Triton tests will skip"
	touch $@

install: $(VENV)/.installed

# The central station is served while the demo runs (the address is printed). Seed 8: a
# cohort of four the shipped demonstration model reads as no finding (see README).
demo: $(VENV)/.installed
	$(BIN)/mrm-edge monitor --duration 60 --seed 8 --web 127.0.0.1:8765

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info

# The shipped model: MRM-Net (paper preset) on the PTB-XL development subset,
# superdiagnostic task, folds 1-8 / 9 / 10, then its FP32 / FP16 ONNX and both INT8 ONNX
# (model.int8.onnx for ONNX Runtime CPU, model.int8-sym.onnx for TensorRT / OpenVINO).
# Takes about an hour on 2 CPU cores.
PTBXL ?= ../shared/data/ptb-xl
SHIPPED := models/mrm-net-ptbxl-superdiagnostic
shipped-model: $(VENV)/.installed
	$(BIN)/mrm-edge train --data $(PTBXL) --dataset ptbxl --task superdiagnostic \
		--preset paper --epochs 40 --seed 0 --name mrm-net-ptbxl-superdiagnostic \
		--out runs/shipped
	rm -rf $(SHIPPED) && mkdir -p models && cp -r runs/shipped/model $(SHIPPED)
	$(BIN)/mrm-edge export --model $(SHIPPED) --fp16 --int8 --calib-data $(PTBXL) --no-engine
	rm -rf $(SHIPPED)/.calibration-cache

# The shipped edge model (docs/model.md#the-edge-model): the `edge` preset distilled from the
# shipped model above on the same folds and budget, exported and gated the same way.
# Takes about 10 minutes on 2 CPU cores.
EDGE := models/mrm-net-edge-ptbxl-superdiagnostic
edge-model: $(VENV)/.installed
	$(BIN)/mrm-edge distill --teacher $(SHIPPED) --data $(PTBXL) --dataset ptbxl \
		--task superdiagnostic --preset edge --epochs 40 --seed 0 \
		--name mrm-net-edge-ptbxl-superdiagnostic --out runs/edge
	rm -rf $(EDGE) && mkdir -p models && cp -r runs/edge/model $(EDGE)
	$(BIN)/mrm-edge export --model $(EDGE) --fp16 --int8 --calib-data $(PTBXL) --no-engine
	rm -rf $(EDGE)/.calibration-cache
