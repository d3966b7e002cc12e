"""Model runners behind the core's seam: onnxruntime sessions (CPU and CUDA) and the provider doctor."""
