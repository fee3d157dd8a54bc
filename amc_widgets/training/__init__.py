"""The training program that runs inside AMC's container (``container/train``).

It honours the SageMaker training contract and needs the ``train`` extra (ultralytics, onnx,
onnxruntime).  The local backend runs the very same program with ``AMC_ML_ROOT`` pointing at an
emulated ``/opt/ml`` folder.
"""
