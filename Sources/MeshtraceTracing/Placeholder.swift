enum MeshtraceTracingPlaceholder {}
